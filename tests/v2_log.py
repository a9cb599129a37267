"""Build audit bundles with event format v2 directly, without the server (verifier tests).

Institution events are v1 bodies signed by an institution key made here; person steps are v2
decisions signed by tests/softauthn.py passkeys (ES256, Ed25519) or by server-held Ed25519 keys.
Each builder call appends one correctly chained event, so a test that makes one thing wrong
(a signature, a key event, a request_prev) gets a bundle in which only that thing is wrong.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from expense_audit.canonical import (
    GENESIS_PREV,
    canonical_json,
    event_hash,
    key_fingerprint,
    key_id,
    signing_message,
)
from expense_audit.checkpoint import sign_checkpoint
from expense_audit.decision import (
    batch_challenge,
    decision_challenge,
    decision_hash,
    make_decision,
    make_log_body,
    server_signature,
    webauthn_signature_from_json,
)
from expense_audit.merkle import leaf_hash, root_from_leaf_hashes
from expense_audit.verify.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CHECKPOINTS,
    EVENTS,
    KEYS,
    MANIFEST,
    event_line,
)
from expense_audit.webauthn import b64url_encode, passkey_key_id

from .softauthn import SoftAuthenticator

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "th-demo.edu.vn/expenses"
RP_ID = "th-demo.edu.vn"
WEB_ORIGIN = "https://th-demo.edu.vn"
T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
WORKFLOW_PATH = "expense_approval.toml"
CATALOGUE_PATH = "budgets/2024-2025.toml"
QUOTE = {"name": "bao-gia-1.pdf", "sha256": "a" * 64}

Signer = SoftAuthenticator | Ed25519PrivateKey


def content(title: str = "In tài liệu tập huấn", amount: int = 400_000) -> dict[str, Any]:
    return {
        "title": title,
        "description": "",
        "line": "PRINT",
        "source": "NSNN-TX",
        "budget_year": 2025,
        "quantity": 1,
        "unit_price_vnd": amount,
        "amount_vnd": amount,
        "attachments": [QUOTE],
    }


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class V2Log:
    """One log under construction: events, the keys they imply, and the request heads."""

    def __init__(self) -> None:
        self.institution = Ed25519PrivateKey.generate()
        raw = self.institution.public_key().public_bytes_raw()
        self.institution_id = key_id(raw)
        self.fingerprint = key_fingerprint(raw)
        self.workflow = (ROOT / "definitions" / WORKFLOW_PATH).read_bytes()
        self.catalogue = (ROOT / "definitions" / CATALOGUE_PATH).read_bytes()
        self.definition = hashlib.sha256(self.workflow).hexdigest()
        self.budget = hashlib.sha256(self.catalogue).hexdigest()
        self.time = T0
        self.lines: list[bytes] = []
        self.leaves: list[bytes] = []
        self.prev = GENESIS_PREV
        self.heads: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.keys: dict[str, dict[str, Any]] = {
            self.institution_id: {
                "key_id": self.institution_id,
                "owner": "institution",
                "public_key": raw.hex(),
                "fingerprint": self.fingerprint,
                "registered_seq": 1,
                "revoked_seq": None,
            }
        }
        self.institution_event(
            "log.init", {"institution_key": raw.hex(), "fingerprint": self.fingerprint}
        )

    # --- Appending. ------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The seq of the next event."""
        return len(self.lines) + 1

    def _tick(self) -> str:
        self.time += timedelta(minutes=1)
        return fmt(self.time)

    def _append(self, body_bytes: bytes, sig: bytes) -> int:
        digest = event_hash(body_bytes)
        self.lines.append(event_line(body_bytes, digest, sig))
        self.leaves.append(leaf_hash(bytes.fromhex(digest) + sig))
        self.prev = digest
        return len(self.lines)

    def v1(
        self,
        *,
        actor: str,
        key: str,
        signer: Ed25519PrivateKey,
        action: str,
        data: dict[str, Any],
        request: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        role: str | None = None,
        definition: str | None = None,
        comment: str | None = None,
    ) -> int:
        body = {
            "v": 1,
            "origin": ORIGIN,
            "seq": self.seq,
            "prev": self.prev,
            "ts": self._tick(),
            "request": request,
            "action": action,
            "from": from_state,
            "to": to_state,
            "actor": actor,
            "role": role or actor,
            "key": key,
            "definition": definition,
            "data": data,
            "comment": comment,
        }
        body_bytes = canonical_json(body)
        seq = self._append(body_bytes, signer.sign(signing_message(body_bytes)))
        if request is not None:
            self.heads[request] = self.prev
            self.states[request] = str(to_state)
        return seq

    def institution_event(self, action: str, data: dict[str, Any]) -> int:
        return self.v1(
            actor="institution",
            key=self.institution_id,
            signer=self.institution,
            action=action,
            data=data,
        )

    def v2(self, decision: dict[str, Any], signature: dict[str, Any]) -> int:
        """Append a signed decision (logged a minute after it was issued)."""
        body = make_log_body(
            seq=self.seq, prev=self.prev, ts=self._tick(), decision=decision, signature=signature
        )
        seq = self._append(canonical_json(body), b"")
        if decision["request"] is not None:
            self.heads[decision["request"]] = self.prev
            self.states[decision["request"]] = decision["to"]
        return seq

    def replace_last(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Rewrite the last (v2) event's body, as someone holding the database could."""
        body = json.loads(self.lines[-1])["body"]
        body_bytes = canonical_json(change(body))
        digest = event_hash(body_bytes)
        self.lines[-1] = event_line(body_bytes, digest, b"")
        self.leaves[-1] = leaf_hash(bytes.fromhex(digest))
        self.prev = digest

    # --- Institution events. -----------------------------------------------------------------------

    def roles(self, login: str, roles: Sequence[str], *, by: str | None = "admin") -> int:
        data: dict[str, Any] = {"login": login, "roles": sorted(roles)}
        if by is not None:
            data["by"] = by
        return self.institution_event("user.roles", data)

    def active(self, login: str, active: bool, *, by: str = "admin") -> int:
        return self.institution_event("user.active", {"login": login, "active": active, "by": by})

    def register_legacy(self, owner: str) -> tuple[str, Ed25519PrivateKey]:
        private = Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes_raw()
        kid = key_id(raw)
        seq = self.institution_event(
            "key.register", {"key_id": kid, "public_key": raw.hex(), "owner": owner}
        )
        self._key(kid, owner, raw.hex(), seq)
        return kid, private

    def enroll_passkey(
        self,
        owner: str,
        auth: SoftAuthenticator,
        *,
        by: str = "admin",
        method: str = "enrollment",
        rotated_by: int | None = None,
    ) -> str:
        kid = passkey_key_id(auth.spki)
        public = b64url_encode(auth.spki)
        seq = self.institution_event(
            "key.enroll",
            {
                "key_id": kid,
                "owner": owner,
                "kind": "passkey",
                "method": method,
                "by": by,
                "public_key": public,
                "alg": auth.alg,
                "credential_id": b64url_encode(auth.credential_id),
                "rp_id": RP_ID,
                "origins": [WEB_ORIGIN],
                "rotated_by": rotated_by,
            },
        )
        self._key(kid, owner, public, seq)
        return kid

    def enroll_server_held(
        self,
        owner: str,
        *,
        by: str = "admin",
        method: str = "enrollment",
        rotated_by: int | None = None,
        private: Ed25519PrivateKey | None = None,
    ) -> tuple[str, Ed25519PrivateKey]:
        private = private or Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes_raw()
        kid = key_id(raw)
        seq = self.institution_event(
            "key.enroll",
            {
                "key_id": kid,
                "owner": owner,
                "kind": "server-held",
                "method": method,
                "by": by,
                "public_key": raw.hex(),
                "alg": "ed25519",
                "credential_id": None,
                "rp_id": None,
                "origins": [],
                "rotated_by": rotated_by,
            },
        )
        self._key(kid, owner, raw.hex(), seq)
        return kid, private

    def revoke(self, kid: str, *, reason: str, by: str = "admin") -> int:
        owner = self.keys[kid]["owner"]
        seq = self.institution_event(
            "key.revoke", {"key_id": kid, "owner": owner, "reason": reason, "by": by}
        )
        self.keys[kid]["revoked_seq"] = seq
        return seq

    def _key(self, kid: str, owner: str, public: str, seq: int) -> None:
        self.keys[kid] = {
            "key_id": kid,
            "owner": owner,
            "public_key": public,
            "registered_seq": seq,
            "revoked_seq": None,
        }

    # --- Person decisions. -----------------------------------------------------------------------

    def decision(
        self,
        *,
        actor: str,
        key: str,
        action: str,
        role: str,
        request: str | None = None,
        to_state: str | None = None,
        data: dict[str, Any] | None = None,
        comment: str | None = None,
        request_prev: str | None | Callable[[], str | None] = None,
    ) -> dict[str, Any]:
        """A decision about the request as it stands now (request_prev = its latest event)."""
        prev = self.heads.get(request) if request is not None else None
        if request_prev is not None:
            prev = request_prev() if callable(request_prev) else request_prev
        from_state = None if request is None else self.states.get(request, "draft")
        return make_decision(
            origin=ORIGIN,
            request=request,
            request_prev=prev,
            action=action,
            from_state=from_state,
            to_state=to_state,
            actor=actor,
            role=role,
            key=key,
            definition=None if request is None else self.definition,
            budget=None if request is None else self.budget,
            data=data if data is not None else {},
            comment=comment,
            issued=fmt(self.time),
        )

    @staticmethod
    def sign(signer: Signer, decision: dict[str, Any], **knobs: Any) -> dict[str, Any]:
        if isinstance(signer, SoftAuthenticator):
            return webauthn_signature_from_json(signer.get(decision_challenge(decision), **knobs))
        return server_signature(decision, signer)

    @staticmethod
    def sign_batch(auth: SoftAuthenticator, decisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
        hashes = [decision_hash(d) for d in decisions]
        return webauthn_signature_from_json(auth.get(batch_challenge(hashes)), batch=hashes)

    def confirm(self, actor: str, kid: str, signer: Signer) -> int:
        decision = self.decision(
            actor=actor, key=kid, action="key.confirm", role="owner", data={"key_id": kid}
        )
        return self.v2(decision, self.sign(signer, decision))

    def rotate(self, actor: str, old: str, signer: Signer, new: str) -> int:
        decision = self.decision(
            actor=actor, key=old, action="key.rotate", role="owner", data={"new_key": new}
        )
        return self.v2(decision, self.sign(signer, decision))

    def step_decision(
        self,
        actor: str,
        kid: str,
        action: str,
        request: str,
        to_state: str,
        role: str,
        *,
        payment: dict[str, Any] | None = None,
        comment: str | None = None,
        request_content: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"content": request_content or content()}
        if payment is not None:
            data["payment"] = payment
        return self.decision(
            actor=actor,
            key=kid,
            action=action,
            role=role,
            request=request,
            to_state=to_state,
            data=data,
            comment=comment,
            **extra,
        )

    def step(self, signer: Signer, *args: Any, **kwargs: Any) -> int:
        decision = self.step_decision(*args, **kwargs)
        return self.v2(decision, self.sign(signer, decision))

    # --- The bundle. -----------------------------------------------------------------------------

    def write(self, path: Path) -> Path:
        checkpoint = sign_checkpoint(
            ORIGIN,
            len(self.leaves),
            root_from_leaf_hashes(self.leaves),
            self.institution,
            now=self.time + timedelta(minutes=1),
        )
        definitions = {self.definition: WORKFLOW_PATH, self.budget: CATALOGUE_PATH}
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "origin": ORIGIN,
            "institution": {"key_id": self.institution_id, "fingerprint": self.fingerprint},
            "event_count": len(self.lines),
            "head_hash": self.prev,
            "exported_at": fmt(self.time + timedelta(minutes=2)),
            "definitions": definitions,
        }
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(EVENTS, b"".join(self.lines))
            archive.writestr(
                CHECKPOINTS,
                json.dumps(
                    {
                        "size": checkpoint.size,
                        "root": checkpoint.root_hex,
                        "note": checkpoint.note,
                    }
                )
                + "\n",
            )
            archive.writestr(KEYS, json.dumps(list(self.keys.values()), indent=1))
            archive.writestr(f"definitions/{self.definition}/{WORKFLOW_PATH}", self.workflow)
            archive.writestr(f"definitions/{self.budget}/{CATALOGUE_PATH}", self.catalogue)
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
        return path
