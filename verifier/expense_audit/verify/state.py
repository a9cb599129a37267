"""Incremental verification: what an auditor keeps after a valid run, and resuming from it."""

from __future__ import annotations

from typing import Any

from ..checkpoint import Checkpoint
from ..merkle import root_from_leaf_hashes
from .keys import Keyring
from .report import BundleUnreadable

STATE_FORMAT = "expense-audit-verifier-state"
STATE_VERSION = 3


def export_state(
    *,
    origin: str,
    leaves: list[bytes],
    keyring: Keyring,
    projections: dict[str, Any],
    heads: dict[str, str],
) -> dict[str, Any]:
    """What an auditor keeps after a full verification, to verify only what is new next time."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "origin": origin,
        "size": len(leaves),
        "root": root_from_leaf_hashes(leaves).hex(),
        # keys (with enrollment history), roles, locks, people, rotations, sign counters
        **keyring.export_state(),
        "projections": projections,
        "request_heads": heads,
    }


def institution_public(state: dict[str, Any]) -> bytes:
    """The institution public key recorded in a saved state."""
    try:
        return bytes.fromhex(state["keys"][state["institution_key"]]["public_hex"])
    except (KeyError, TypeError, ValueError):
        raise BundleUnreadable("the saved state names no institution key") from None


def load_state(
    state: dict[str, Any], trusted: Checkpoint, keyring: Keyring
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fill the keyring from a state saved at ``trusted``; return projections and request heads."""
    if (
        state.get("format") != STATE_FORMAT
        or state.get("version") != STATE_VERSION
        or state.get("size") != trusted.size
        or state.get("root") != trusted.root_hex
    ):
        raise BundleUnreadable("the saved state does not belong to the trusted checkpoint")
    try:
        keyring.load_state(state)
        projections: dict[str, Any] = dict(state["projections"])
        heads: dict[str, str] = dict(state["request_heads"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleUnreadable(f"the saved state is malformed: {exc!r:.100}") from None
    return projections, heads
