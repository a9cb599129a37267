"""Incremental verification: what an auditor keeps after a valid run, and resuming from it."""

from __future__ import annotations

from typing import Any

from ..checkpoint import Checkpoint
from ..merkle import root_from_leaf_hashes
from .keys import Key, Keyring
from .report import BundleUnreadable

STATE_FORMAT = "expense-audit-verifier-state"
STATE_VERSION = 2


def export_state(
    *, origin: str, leaves: list[bytes], keyring: Keyring, projections: dict[str, Any]
) -> dict[str, Any]:
    """What an auditor keeps after a full verification, to verify only what is new next time."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "origin": origin,
        "size": len(leaves),
        "root": root_from_leaf_hashes(leaves).hex(),
        "institution_key": keyring.institution_key,
        "fingerprint": keyring.fingerprint,
        "keys": {
            kid: {
                "owner": k.owner,
                "public_hex": k.public_hex,
                "registered_seq": k.registered_seq,
                "revoked_seq": k.revoked_seq,
            }
            for kid, k in keyring.keys.items()
        },
        "roles": {login: sorted(roles) for login, roles in keyring.roles.items()},
        "locked": sorted(keyring.locked),
        "projections": projections,
    }


def institution_public(state: dict[str, Any]) -> bytes:
    """The institution public key recorded in a saved state."""
    try:
        return bytes.fromhex(state["keys"][state["institution_key"]]["public_hex"])
    except (KeyError, TypeError, ValueError):
        raise BundleUnreadable("the saved state names no institution key") from None


def load_state(state: dict[str, Any], trusted: Checkpoint, keyring: Keyring) -> dict[str, Any]:
    """Fill the keyring from a state saved at ``trusted``; return the saved projections."""
    if (
        state.get("format") != STATE_FORMAT
        or state.get("version") != STATE_VERSION
        or state.get("size") != trusted.size
        or state.get("root") != trusted.root_hex
    ):
        raise BundleUnreadable("the saved state does not belong to the trusted checkpoint")
    try:
        keyring.institution_key = str(state["institution_key"])
        keyring.fingerprint = str(state["fingerprint"])
        keyring.keys = {
            str(kid): Key(
                str(k["owner"]), str(k["public_hex"]), int(k["registered_seq"]), k["revoked_seq"]
            )
            for kid, k in state["keys"].items()
        }
        keyring.roles = {str(login): set(roles) for login, roles in state["roles"].items()}
        keyring.locked = set(state["locked"])
        projections: dict[str, Any] = dict(state["projections"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleUnreadable(f"the saved state is malformed: {exc!r:.100}") from None
    return projections
