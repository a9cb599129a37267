"""Offline verifier of an audit bundle: no database, no Flask, no network.

The bundle is hostile input: the school is the party being audited and controls every byte of it.
The verification, in order (each step fails closed; every problem is listed, none stops the run):

1. format: the zip holds only the members the format names (manifest.json, events.jsonl,
   keys.json, checkpoints.jsonl, definitions/<sha256>/<path>.toml, attachments/<sha256>), each once, none absolute or
   with '..'; every member is read under its size cap, checked before it is read; definition
   files must hash to the name they are filed under.
2. format: every events.jsonl line is byte-for-byte JCS of {"body","hash","sig"} and at most
   MAX_LINE bytes; the signed bytes are used as they are, never re-serialized.
3. fields: the body is canonical RFC 8785 (no duplicate keys, no escapes JCS would not write, no
   floats or exponents) and every field has its type before anything uses it.
4. chain: seq without gap, duplicate or reordering; prev links; one origin; timestamps RFC 3339
   UTC and not going back by more than chain.CLOCK_TOLERANCE.
5. keys: the key named is registered in the log (institution events), valid at this seq, the
   actor's own, and the institution key matches the auditor's full 64-hex pin.
6. keys: sha256 of the body bytes is the line's hash; the Ed25519 signature verifies.
7. replay: institution events set keys, roles and locked accounts; every request event is
   replayed through the definition it names (state, roles, separation of duties, comments,
   bound content, guards); a validly signed but forbidden step is a problem.
8. checkpoints: each signed note verifies (strict C2SP), its unsigned size and root repeat it, the
   final one covers every event and its signed time is not before any event; a --trust
   checkpoint is a prefix of this log; a --proof is an RFC 9162 consistency proof from the
   --trust checkpoint to the final one. Roots come from the one pass over the events (a Merkle
   frontier); resumed from a --state, the frontier saved at the --trust checkpoint stands for the
   earlier events, which are not read again (a delta bundle holds only the new ones).
   8b. cosignatures: every witness cosignature line (C2SP cosignature/v1) on a checkpoint note is
   listed; with --witness-key, those of the named witnesses must verify over their checkpoint and
   be dated after the school signed it and not in the future, and the final checkpoint must carry
   one of each named witness.
9. metadata: manifest.json and keys.json equal what the log and the members imply; every
   attachments/<sha256> file hashes to its name and to a record a signed event binds, and a
   bundle made --with-attachments holds every bound file.
10. trust: without --institution-key or --trust the result is NOT VERIFIED AGAINST A TRUSTED KEY
    (exit 3), since anyone can sign a log with a key of their own.
"""

from __future__ import annotations

from .cli import main
from .report import (
    EXIT_INVALID,
    EXIT_NOT_TRUSTED,
    EXIT_UNREADABLE,
    EXIT_VALID,
    BundleUnreadable,
    Kind,
    PinInvalid,
    Problem,
    Report,
    VerifyError,
)
from .verifier import verify_bundle

__all__ = [
    "EXIT_INVALID",
    "EXIT_NOT_TRUSTED",
    "EXIT_UNREADABLE",
    "EXIT_VALID",
    "BundleUnreadable",
    "Kind",
    "PinInvalid",
    "Problem",
    "Report",
    "VerifyError",
    "main",
    "verify_bundle",
]
