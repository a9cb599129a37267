"""Incremental verification: what an auditor keeps after a valid run, and resuming from it.

The state holds the Merkle frontier (the right edge of the tree at the trusted checkpoint), the
chain's head and latest time, keys, roles, every request's projection and head: enough to verify
only the events after the checkpoint, without reading or hashing the earlier ones again.
"""

from __future__ import annotations

from typing import Any

from ..checkpoint import Checkpoint
from ..merkle import Frontier
from .chain import Chain
from .fields import parse_ts
from .keys import Keyring
from .report import BundleUnreadable

STATE_FORMAT = "expense-audit-verifier-state"
STATE_VERSION = 5  # 4: the Merkle frontier and chain head; 5: mandates granted in the log


def export_state(
    *,
    origin: str,
    frontier: Frontier,
    chain: Chain,
    keyring: Keyring,
    projections: dict[str, Any],
    heads: dict[str, str],
    mandates: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What an auditor keeps after a full verification, to verify only what is new next time."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "origin": origin,
        "size": frontier.size,
        "root": frontier.root().hex(),
        "frontier": [h.hex() for h in frontier.hashes],
        "head_hash": chain.prev_hash,
        "latest_ts": chain.latest_text,
        # keys (with enrollment history), roles, locks, people, rotations, sign counters
        **keyring.export_state(),
        "projections": projections,
        "request_heads": heads,
        "mandates": mandates or {},
    }


def institution_public(state: dict[str, Any]) -> bytes:
    """The institution public key recorded in a saved state."""
    try:
        return bytes.fromhex(state["keys"][state["institution_key"]]["public_hex"])
    except (KeyError, TypeError, ValueError):
        raise BundleUnreadable("the saved state names no institution key") from None


def load_state(
    state: dict[str, Any], trusted: Checkpoint, keyring: Keyring, chain: Chain
) -> tuple[Frontier, dict[str, Any], dict[str, str]]:
    """Fill the keyring and the chain from a state saved at ``trusted``.

    Returns the frontier (checked against the trusted root), the projections and request heads.
    """
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise BundleUnreadable(
            f"the saved state is not a version {STATE_VERSION} verifier state: verify the whole "
            "bundle once more with --save-state"
        )
    if state.get("size") != trusted.size or state.get("root") != trusted.root_hex:
        raise BundleUnreadable("the saved state does not belong to the trusted checkpoint")
    try:
        frontier = Frontier(trusted.size, [bytes.fromhex(h) for h in state["frontier"]])
        head_hash, latest_ts = str(state["head_hash"]), str(state["latest_ts"])
        latest = parse_ts(latest_ts) if latest_ts else None
        keyring.load_state(state)
        projections: dict[str, Any] = dict(state["projections"])
        heads: dict[str, str] = dict(state["request_heads"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleUnreadable(f"the saved state is malformed: {exc!r:.100}") from None
    # NOTE: the frontier must fold to the root the auditor trusts; otherwise the state file was
    # edited and nothing verified from it would mean anything.
    if frontier.root() != trusted.root:
        raise BundleUnreadable("the saved state's frontier does not give the trusted root")
    chain.origin = trusted.origin
    chain.expected_seq, chain.last_seq, chain.prev_hash = trusted.size + 1, trusted.size, head_hash
    chain.latest, chain.latest_text = latest, latest_ts
    return frontier, projections, heads
