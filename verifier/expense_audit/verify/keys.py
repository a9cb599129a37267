"""Steps 5 and 6: signatures and keys. Which key must have signed each event, and the Ed25519 check.

Keys enter the log only through institution-signed events (log.init, key.register, key.enroll,
key.revoke); role grants and account locks (user.roles, user.active) are institution events too.
A key enrolled by key.enroll signs nothing but its own key.confirm (v2) until that is logged; a
rotation must name a verified key.rotate signed by the owner's old key. v2 decisions are checked
here in log order (sign counters need the order); v1 signatures go to the pool.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from .. import vocabulary
from ..canonical import event_hash, key_fingerprint, key_id, signing_message
from ..certificates import check_possession, facts_of, possession_message, unb64
from ..decision import DECISION_FIELDS, verify_decision_signature
from ..errors import DataInvalid, WorkflowError
from ..webauthn import (
    EDDSA,
    ES256,
    Passkey,
    SignatureCheck,
    SignCounters,
    b64url_decode,
    check_assertion_signature,
    load_public_key,
    passkey_key_id,
)
from .fields import INSTITUTION, PASSKEY, SERVER_HELD
from .report import Kind, Problem, Report

CHAIN_ROLES = frozenset(vocabulary.CHAIN_ROLES)
ADMIN = "admin"
SETUP = "setup"  # `by` of grants and enrollments made by the CLI and the demo set-up
UNKNOWN = "unknown"  # `by` of an older event that did not name the acting admin
LEGACY = "legacy"
# webauthn / decision error codes -> problem kinds (anything else: assertion-invalid)
_ASSERTION_KINDS = {
    "signature_kind_mismatch": Kind.SIGNATURE_KIND_MISMATCH,
    "decision_not_in_batch": Kind.DECISION_NOT_IN_BATCH,
    "challenge_mismatch": Kind.CHALLENGE_MISMATCH,
    "origin_not_allowed": Kind.ORIGIN_NOT_ALLOWED,
    "rp_id_mismatch": Kind.RP_ID_MISMATCH,
    "user_presence_missing": Kind.USER_PRESENCE_MISSING,
    "user_verification_missing": Kind.USER_VERIFICATION_MISSING,
    "sign_count_not_increasing": Kind.SIGN_COUNT_NOT_INCREASING,
    "assertion_replayed": Kind.ASSERTION_REPLAYED,
    "assertion_signature_invalid": Kind.BAD_SIGNATURE,
    "server_signature_invalid": Kind.BAD_SIGNATURE,
}


@dataclass
class Key:
    owner: str
    public_hex: str  # as the log records it: hex raw Ed25519, or base64url SPKI DER (passkey)
    registered_seq: int  # the event that registered it; it signs from the next one on
    revoked_seq: int | None = None
    kind: str = SERVER_HELD  # "institution", "server-held" or "passkey"
    method: str = LEGACY  # "institution", "legacy", "enrollment", "rotation" or "recovery"
    by: str = SETUP
    registered_ts: str = ""
    confirmed_seq: int | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    rotated_by: int | None = None
    alg: int | str = "ed25519"
    credential_id: str | None = None
    rp_id: str | None = None
    origins: tuple[str, ...] = ()

    def valid_at(self, seq: int) -> bool:
        return seq > self.registered_seq and (self.revoked_seq is None or seq <= self.revoked_seq)

    @property
    def needs_confirm(self) -> bool:
        """Keys enrolled by key.enroll sign nothing but their key.confirm until it is logged."""
        return self.method not in (LEGACY, INSTITUTION)

    def verifier(self) -> Passkey | Ed25519PublicKey:
        """What verify_decision_signature checks a decision against (ValueError if unusable)."""
        if self.kind == PASSKEY:
            if not isinstance(self.alg, int) or self.credential_id is None or self.rp_id is None:
                raise ValueError("passkey without algorithm, credential or rpId")
            spki = b64url_decode(self.public_hex, field="public_key")
            load_public_key(spki, self.alg)
            return Passkey(
                credential_id=b64url_decode(self.credential_id, field="credential_id"),
                public_key=spki,
                alg=self.alg,
                rp_id=self.rp_id,
                origins=self.origins,
            )
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_hex))

    def to_state(self) -> dict[str, Any]:
        state = asdict(self)
        state["origins"] = list(self.origins)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Key:
        values = dict(state)
        values["origins"] = tuple(str(o) for o in values.get("origins", ()))
        return cls(**values)


@dataclass
class Person:
    """What the report says about one login: grants, account events and signed steps."""

    grants: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    recovery_key_steps: list[int] = field(default_factory=list)
    server_held_steps: list[int] = field(default_factory=list)
    admin_with_chain_role: bool = False
    certificates: list[dict[str, Any]] = field(
        default_factory=list
    )  # CA certificates (cert.register)
    signed_forms: list[dict[str, Any]] = field(default_factory=list)  # PAdES forms (form.sign)


@dataclass
class Keyring:
    """Keys, roles and locked accounts as the institution events so far establish them."""

    pinned: str | None = None
    keys: dict[str, Key] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    institution_key: str | None = None
    fingerprint: str = ""
    people: dict[str, Person] = field(default_factory=dict)
    # seq of each verified key.rotate -> (owner, old key, new key); used ones are removed
    rotations: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    counters: SignCounters = field(default_factory=SignCounters)

    def person(self, login: str) -> Person:
        return self.people.setdefault(login, Person())

    def signing_key(self, seq: int, body: dict[str, Any], report: Report) -> bytes | None:
        """The public key that must verify this v1 event, or None (and a problem) if there is none."""
        kid, actor = body["key"], body["actor"]
        if body["action"] == "log.init" and actor == INSTITUTION:
            if seq != 1 or self.institution_key is not None:
                report.add(seq, Kind.FORBIDDEN_STEP, "log.init may only be the first event")
                return None
            self._init(seq, body, report)
        key = self._check_key(seq, body, report)
        if key is None:
            return None
        if key.kind == PASSKEY:
            report.add(
                seq,
                Kind.SIGNATURE_KIND_MISMATCH,
                f"key {kid} is a passkey; a v1 event carries an Ed25519 signature",
                body["request"],
            )
            return None
        return bytes.fromhex(key.public_hex)

    def _check_key(self, seq: int, body: dict[str, Any], report: Report) -> Key | None:
        """The key named, checked for existence, validity at seq, owner and confirmation."""
        kid, actor = body["key"], body["actor"]
        key = self.keys.get(kid)
        if key is None:
            report.add(seq, Kind.UNKNOWN_KEY, f"key {kid} was never registered in this log")
            return None
        if not key.valid_at(seq) and not (seq == 1 and kid == self.institution_key):
            until = key.revoked_seq if key.revoked_seq is not None else "now"
            report.add(
                seq,
                Kind.KEY_NOT_VALID,
                f"key {kid} of {key.owner} is valid for seq {key.registered_seq + 1}..{until}",
            )
        if key.owner != actor:
            report.add(
                seq, Kind.KEY_OWNER_MISMATCH, f"key {kid} belongs to {key.owner}, actor is {actor}"
            )
        if (
            key.needs_confirm
            and key.confirmed_seq is None
            and body["action"] != "key.confirm"
            and actor != INSTITUTION
        ):
            report.add(
                seq,
                Kind.KEY_UNCONFIRMED,
                f"key {kid} of {key.owner} signs {body['action']} before its key.confirm",
                body["request"],
            )
        return key

    def _init(self, seq: int, body: dict[str, Any], report: Report) -> None:
        public_hex = body["data"]["institution_key"]
        public_raw = bytes.fromhex(public_hex)
        fingerprint = key_fingerprint(public_raw)
        if body["data"]["fingerprint"] != fingerprint:
            report.add(seq, Kind.MALFORMED, "log.init names a fingerprint that is not its key's")
        self.fingerprint = fingerprint
        # NOTE: a pin is compared in full, never as a prefix: grinding a prefix is instant.
        if self.pinned is not None and fingerprint != self.pinned:
            report.add(
                seq,
                Kind.INSTITUTION_KEY_MISMATCH,
                f"log is signed by {fingerprint}, you trust {self.pinned}",
            )
        self.institution_key = key_id(public_raw)
        self.keys[self.institution_key] = Key(
            INSTITUTION,
            public_hex,
            registered_seq=0,
            kind=INSTITUTION,
            method=INSTITUTION,
            by=INSTITUTION,
            registered_ts=body["ts"],
        )

    # --- Institution events. ---------------------------------------------------------------------

    def apply(self, seq: int, body: dict[str, Any], report: Report) -> None:
        """Apply an institution event (fields already type-checked)."""
        if body["key"] != self.institution_key:
            report.add(
                seq, Kind.FORBIDDEN_STEP, "institution events must be signed by the institution key"
            )
            return
        action, data = body["action"], body["data"]
        if action == "user.roles":
            self._roles(seq, body["ts"], data, report)
        elif action == "user.active":
            self._by_admin(seq, data["by"], f"locks or unlocks {data['login']}", report)
            self.person(data["login"]).accounts.append(
                {"active": data["active"], "by": data["by"], "seq": seq, "ts": body["ts"]}
            )
            if data["active"]:
                self.locked.discard(data["login"])
            else:
                self.locked.add(data["login"])
        elif action == "key.register":
            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(data["public_key"]))
            except ValueError:
                report.add(seq, Kind.UNKNOWN_KEY, "registered key is not an Ed25519 key")
                return
            if data["key_id"] in self.keys:
                report.add(seq, Kind.FORBIDDEN_STEP, f"key id {data['key_id']} registered twice")
                return
            if key_id(bytes.fromhex(data["public_key"])) != data["key_id"]:
                report.add(seq, Kind.MALFORMED, "registered key id is not the key's fingerprint")
                return
            self.keys[data["key_id"]] = Key(
                data["owner"], data["public_key"], registered_seq=seq, registered_ts=body["ts"]
            )
        elif action == "key.enroll":
            self._enroll(seq, body["ts"], data, report)
        elif action == "cert.register":
            self._certificate(seq, body, report)
        elif action == "cert.revoke":
            self._revoke_certificate(seq, body["ts"], data, report)
        elif action == "form.sign":
            self._signed_form(seq, body["ts"], data, report)
        elif action == "key.revoke":
            key = self.keys.get(data["key_id"])
            if (
                key is None
                or key.owner != data["owner"]
                or key.revoked_seq is not None
                or key.kind == INSTITUTION
            ):
                report.add(seq, Kind.FORBIDDEN_STEP, f"revokes key {data['key_id']} it cannot")
                return
            key.revoked_seq = seq
            key.revoked_by = data.get("by", UNKNOWN)
            key.revoke_reason = data["reason"]

    def _certificate(self, seq: int, body: dict[str, Any], report: Report) -> None:
        """cert.register: the DER matches its facts, its owner signed the proof, an admin asked."""
        data = body["data"]
        owner, by = data["owner"], data["by"]
        try:
            der = unb64(data["der"])
            facts = facts_of(der)
            message = possession_message(
                origin=body["origin"], owner=owner, sha256=facts.sha256, nonce=data["nonce"], by=by
            )
            proved = check_possession(der, message, unb64(data["proof"]))
        except DataInvalid as exc:
            report.add(seq, Kind.KEY_INVALID, f"cert.register for {owner}: {exc.message_en}")
            return
        recorded = {name: data[name] for name in facts.as_data()}
        if recorded != facts.as_data():
            report.add(
                seq, Kind.KEY_INVALID, f"cert.register for {owner}: facts differ from the DER"
            )
            return
        if not proved:
            report.add(
                seq, Kind.BAD_SIGNATURE, f"cert.register for {owner}: no proof of possession"
            )
            return
        if by == owner:
            report.add(
                seq, Kind.SELF_ENROLLMENT, f"{owner} registered a certificate for themselves"
            )
        else:
            self._by_admin(seq, by, f"registers a certificate for {owner}", report)
        if any(facts.sha256 == c["sha256"] for p in self.people.values() for c in p.certificates):
            report.add(seq, Kind.FORBIDDEN_STEP, f"certificate {facts.sha256} registered twice")
            return
        self.person(owner).certificates.append(
            {**facts.as_data(), "registered_by": by, "seq": seq, "ts": body["ts"]}
        )

    def _revoke_certificate(self, seq: int, ts: str, data: dict[str, Any], report: Report) -> None:
        """cert.revoke: an admin (not the owner) revokes the owner's registered certificate."""
        owner, by = data["owner"], data["by"]
        cert = next(
            (c for c in self.person(owner).certificates if c["sha256"] == data["certificate"]),
            None,
        )
        if cert is None or cert.get("revoked_seq") is not None:
            report.add(
                seq,
                Kind.FORBIDDEN_STEP,
                f"revokes certificate {data['certificate'][:16]} that {owner} does not hold",
            )
            return
        if by == owner:
            report.add(seq, Kind.SELF_ENROLLMENT, f"{owner} revoked their own certificate")
        else:
            self._by_admin(seq, by, f"revokes a certificate of {owner}", report)
        cert.update(revoked_seq=seq, revoked_at=ts, revoked_by=by, revoke_reason=data["reason"])

    def _signed_form(self, seq: int, ts: str, data: dict[str, Any], report: Report) -> None:
        """form.sign: the signer's own registered certificate, not revoked then, signed the form."""
        signer = data["signer"]
        cert = next(
            (c for c in self.person(signer).certificates if c["sha256"] == data["certificate"]),
            None,
        )
        # NOTE: the signing time is the signer's claim; a form entered after the revocation
        # (later in the log) or carrying the CA's revocation is not proven to predate it.
        if cert is not None and (cert.get("revoked_seq") is not None or data.get("ca_revoked_at")):
            revoked = (
                f"revoked at {cert['revoked_at']} (seq {cert['revoked_seq']})"
                if cert.get("revoked_seq") is not None
                else f"revoked by its CA at {data['ca_revoked_at']}"
            )
            report.add(
                seq,
                Kind.KEY_NOT_VALID,
                f"form of {data['request']} (signing time stated: {data['signing_time']}) entered "
                f"with certificate {data['certificate'][:16]} already {revoked}",
                data["request"],
            )
            return
        if cert is None:
            report.add(
                seq,
                Kind.KEY_OWNER_MISMATCH,
                f"form of {data['request']} signed with certificate {data['certificate'][:16]} "
                f"that is not registered to {signer}",
                data["request"],
            )
            return
        self.person(signer).signed_forms.append(
            {
                "request": data["request"],
                "certificate": data["certificate"],
                "pdf_sha256": data["pdf_sha256"],
                "form_sha256": data["form_sha256"],
                "signing_time": data["signing_time"],
                "ca_revoked_at": data.get("ca_revoked_at"),
                "seq": seq,
                "ts": ts,
            }
        )

    def _by_admin(self, seq: int, by: str, what: str, report: Report) -> None:
        """`by` must be an account holding admin now (or the CLI set-up)."""
        if by not in (SETUP, UNKNOWN) and ADMIN not in self.roles.get(by, set()):
            report.add(seq, Kind.NOT_ADMIN, f"{by}, who is not an admin, {what}")

    def _roles(self, seq: int, ts: str, data: dict[str, Any], report: Report) -> None:
        login, by = data["login"], data.get("by", UNKNOWN)
        before, after = self.roles.get(login, set()), set(data["roles"])
        added = sorted(after - before)
        if by == login and added:
            report.add(seq, Kind.SELF_GRANT, f"{login} granted themselves {added}")
        self._by_admin(seq, by, f"grants roles to {login}", report)
        person = self.person(login)
        for grant in person.grants:
            if grant["removed_seq"] is None and grant["role"] not in after:
                grant.update(removed_seq=seq, removed_by=by)
        for role in added:
            person.grants.append(
                {
                    "role": role,
                    "granted_by": by,
                    "seq": seq,
                    "ts": ts,
                    "removed_seq": None,
                    "removed_by": None,
                }
            )
        self.roles[login] = after
        if ADMIN in after and after & CHAIN_ROLES:
            person.admin_with_chain_role = True
            report.add(
                seq,
                Kind.ADMIN_WITH_CHAIN_ROLE,
                f"{login} holds admin and {sorted(after & CHAIN_ROLES)}",
            )

    def _enroll(self, seq: int, ts: str, data: dict[str, Any], report: Report) -> None:
        kid, owner, method, by = data["key_id"], data["owner"], data["method"], data["by"]
        key = Key(
            owner,
            data["public_key"],
            registered_seq=seq,
            kind=data["kind"],
            method=method,
            by=by,
            registered_ts=ts,
            rotated_by=data["rotated_by"],
            alg=data["alg"],
            credential_id=data["credential_id"],
            rp_id=data["rp_id"],
            origins=tuple(data["origins"]),
        )
        # 1. The key itself: well formed, its id derived from it, never enrolled before.
        problem = _key_problem(key, kid)
        if problem is not None:
            report.add(seq, Kind.KEY_INVALID, f"key.enroll of {kid} for {owner}: {problem}")
            return
        if kid in self.keys:
            report.add(seq, Kind.FORBIDDEN_STEP, f"key id {kid} registered twice")
            return
        # 2. How it came: rotation approved by the owner's old key, or an admin (not the owner).
        valid_keys = [
            other for other, k in self.keys.items() if k.owner == owner and k.valid_at(seq)
        ]
        if method == "rotation":
            self._rotation(seq, kid, key, report)
        else:
            if data["rotated_by"] is not None:
                report.add(
                    seq, Kind.ROTATION_INVALID, f"a {method} names key.rotate {data['rotated_by']}"
                )
            if by == owner:
                report.add(seq, Kind.SELF_ENROLLMENT, f"{owner} enrolled key {kid} for themselves")
            else:
                self._by_admin(seq, by, f"enrolls key {kid} for {owner}", report)
            # NOTE: no exemption for the set-up: whoever runs the server must not replace a valid
            # key through the CLI; a new key beside a valid one is a rotation or a recovery.
            if method == "enrollment" and valid_keys:
                report.add(
                    seq,
                    Kind.ENROLLMENT_OVER_VALID_KEY,
                    f"key {kid} enrolled for {owner}, whose key {valid_keys[0]} is still valid: "
                    "neither rotation nor recovery",
                )
        self.keys[kid] = key

    def _rotation(self, seq: int, kid: str, key: Key, report: Report) -> None:
        owner, by, rotate_seq = key.owner, key.by, key.rotated_by
        if by != owner:
            report.add(seq, Kind.ROTATION_INVALID, f"a rotation for {owner} is made by {by}")
            return
        rotation = self.rotations.get(rotate_seq) if rotate_seq is not None else None
        if rotation is None or rotate_seq is None:
            report.add(
                seq,
                Kind.ROTATION_INVALID,
                f"rotation of {owner} to key {kid} names seq {rotate_seq}, which is no verified "
                "key.rotate signed by their old key (or was used already)",
            )
            return
        rotate_owner, old, new = rotation
        if rotate_owner != owner or new != kid:
            report.add(
                seq,
                Kind.ROTATION_INVALID,
                f"key.rotate at seq {rotate_seq} approves key {new} for {rotate_owner}, "
                f"not key {kid} for {owner}",
            )
            return
        old_key = self.keys.get(old)
        if old_key is None or not old_key.valid_at(seq):
            report.add(
                seq, Kind.ROTATION_INVALID, f"the approving key {old} was revoked in between"
            )
            return
        del self.rotations[rotate_seq]

    # --- Person decisions (v2). ------------------------------------------------------------------

    def check_decision(
        self,
        seq: int,
        view: dict[str, Any],
        report: Report,
        defer: Callable[[SignatureCheck], None] | None = None,
    ) -> bool:
        """Key and signature of a v2 event; True when the signature verified with a valid key.

        Passkey uses feed the per-key sign counters; the step is noted for the people report.
        ``defer``: a passkey's signature cryptography goes to the worker pool (request steps,
        whose effect does not depend on it; a bad one is reported when the pool answers).
        """
        before = len(report.problems)
        key = self._check_key(seq, view, report)
        if key is None:
            return False
        if key.kind == INSTITUTION:
            report.add(seq, Kind.FORBIDDEN_STEP, "the institution key signs no decision")
            return False
        try:
            verifier = key.verifier()
        except (ValueError, WorkflowError) as exc:
            report.add(seq, Kind.KEY_INVALID, f"key {view['key']} cannot verify: {exc!s:.120}")
            return False
        decision = {name: view[name] for name in DECISION_FIELDS if name not in ("v", "origin")}
        decision.update(v=2, origin=view["origin"])
        try:
            verify_decision_signature(
                decision,
                view["signature"],
                key=verifier,
                counters=self.counters,
                key_id=view["key"],
                # NOTE: the view comes from decision.check_log_body, which checked this decision
                # (rebuilt from the same members) and this signature object a moment ago.
                already_checked=True,
                defer=defer,
            )
        except WorkflowError as exc:
            kind = _ASSERTION_KINDS.get(exc.code, Kind.ASSERTION_INVALID)
            report.add(
                seq, kind, f"{view['action']} by {view['actor']}: {exc.message}", view["request"]
            )
            return False
        self.note_step(seq, view)
        return len(report.problems) == before

    def note_step(self, seq: int, body: dict[str, Any]) -> None:
        """Remember who signed what with which kind of key (the people report)."""
        key = self.keys.get(body["key"])
        if key is None or body["action"] == "key.confirm":
            return
        person = self.person(body["actor"])
        if key.kind == SERVER_HELD:
            person.server_held_steps.append(seq)
        if key.method == "recovery":
            person.recovery_key_steps.append(seq)

    def key_decision(self, seq: int, view: dict[str, Any], verified: bool, report: Report) -> None:
        """key.confirm and key.rotate: their effect, once their signature verified."""
        actor, kid = view["actor"], view["key"]
        if actor in self.locked:
            report.add(seq, Kind.FORBIDDEN_STEP, f"{actor}'s account is locked")
            return
        if not verified:
            return
        key = self.keys[kid]
        if view["action"] == "key.confirm":
            if view["data"]["key_id"] != kid:
                report.add(
                    seq,
                    Kind.FORBIDDEN_STEP,
                    f"key.confirm of key {view['data']['key_id']} is signed by key {kid}",
                )
            elif not key.needs_confirm or key.confirmed_seq is not None:
                report.add(seq, Kind.FORBIDDEN_STEP, f"key {kid} needs no (further) confirmation")
            else:
                key.confirmed_seq = seq
            return
        new = view["data"]["new_key"]
        if new in self.keys:
            report.add(
                seq, Kind.ROTATION_INVALID, f"key.rotate approves key {new}, enrolled before"
            )
            return
        self.rotations[seq] = (actor, kid, new)

    # --- Outputs. --------------------------------------------------------------------------------

    def people_report(self) -> dict[str, dict[str, Any]]:
        """The report's "people" section: per login, roles, keys and flags."""
        logins = set(self.people) | {k.owner for k in self.keys.values() if k.kind != INSTITUTION}
        result: dict[str, dict[str, Any]] = {}
        for login in sorted(logins):
            person = self.people.get(login, Person())
            keys = [
                {
                    "key_id": kid,
                    "kind": key.kind,
                    "method": key.method,
                    "alg": key.alg,
                    "enrolled_by": key.by,
                    "enrolled_seq": key.registered_seq,
                    "enrolled_ts": key.registered_ts,
                    "rotated_by": key.rotated_by,
                    "confirmed_seq": key.confirmed_seq,
                    "revoked_seq": key.revoked_seq,
                    "revoked_by": key.revoked_by,
                    "revoke_reason": key.revoke_reason,
                }
                for kid, key in self.keys.items()
                if key.owner == login and key.kind != INSTITUTION
            ]
            result[login] = {
                "active": login not in self.locked,
                "roles": [dict(g) for g in person.grants],
                "account_events": [dict(a) for a in person.accounts],
                "keys": keys,
                "server_held_steps": list(person.server_held_steps),
                "certificates": [dict(c) for c in person.certificates],
                "signed_forms": [dict(f) for f in person.signed_forms],
                "flags": {
                    "recovery_key_steps": list(person.recovery_key_steps),
                    "admin_with_chain_role": person.admin_with_chain_role,
                    "server_held_key_used": len(person.server_held_steps),
                },
            }
        return result

    def export_state(self) -> dict[str, Any]:
        """Everything a resumed run needs (JSON-ready)."""
        return {
            "institution_key": self.institution_key,
            "fingerprint": self.fingerprint,
            "keys": {kid: k.to_state() for kid, k in self.keys.items()},
            "roles": {login: sorted(roles) for login, roles in self.roles.items()},
            "locked": sorted(self.locked),
            "people": {login: asdict(p) for login, p in self.people.items()},
            "rotations": {str(s): list(r) for s, r in self.rotations.items()},
            "sign_counters": self.counters.export_state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what export_state saved (raises KeyError/TypeError/ValueError if malformed)."""
        self.institution_key = str(state["institution_key"])
        self.fingerprint = str(state["fingerprint"])
        self.keys = {str(kid): Key.from_state(k) for kid, k in state["keys"].items()}
        self.roles = {str(login): set(roles) for login, roles in state["roles"].items()}
        self.locked = set(state["locked"])
        self.people = {str(login): Person(**p) for login, p in state["people"].items()}
        self.rotations = {
            int(s): (str(r[0]), str(r[1]), str(r[2])) for s, r in state["rotations"].items()
        }
        self.counters = SignCounters.from_state(state["sign_counters"])

    def keys_file(self) -> list[dict[str, Any]]:
        """keys.json as the log implies it, in registration order."""
        entries: list[dict[str, Any]] = []
        for kid, key in self.keys.items():
            entry: dict[str, Any] = {
                "key_id": kid,
                "owner": key.owner,
                "public_key": key.public_hex,
            }
            if kid == self.institution_key:
                entry["fingerprint"] = self.fingerprint
                entry["registered_seq"] = 1
            else:
                entry["registered_seq"] = key.registered_seq
            entry["revoked_seq"] = key.revoked_seq
            entries.append(entry)
        return entries


def _key_problem(key: Key, kid: str) -> str | None:
    """Why an enrolled key cannot be used (None if it can)."""
    if key.kind == PASSKEY:
        if key.alg not in (ES256, EDDSA) or not key.credential_id or not key.rp_id:
            return "a passkey needs alg -7 or -8, a credential id and an rpId"
        if not key.origins:
            return "a passkey needs at least one origin"
        try:
            spki = b64url_decode(key.public_hex, field="public_key")
            b64url_decode(key.credential_id, field="credential_id")
            load_public_key(spki, int(key.alg))
        except WorkflowError as exc:
            return exc.message
        if passkey_key_id(spki) != kid:
            return "key id is not sha256 of the passkey's SPKI"
        return None
    if key.alg != "ed25519" or key.credential_id is not None or key.rp_id or key.origins:
        return "a server-held key has alg ed25519 and no credential, rpId or origins"
    try:
        raw = bytes.fromhex(key.public_hex)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return "public_key is not a raw Ed25519 key in hex"
    if key_id(raw) != kid:
        return "key id is not the key's fingerprint"
    return None


# (seq, request, exact body bytes, claimed hash, signature, public key that must verify it)
Crypto = tuple[int, Any, bytes, str, bytes, bytes | None]
# (seq, request, what the problem says, a v2 passkey signature to check)
AssertionCrypto = tuple[int, Any, str, SignatureCheck]
BATCH = 2048


def assertion_checks(items: list[AssertionCrypto]) -> list[Problem]:
    """Passkey signatures of v2 events whose other checks passed in log order (in workers)."""
    return [
        Problem(seq, Kind.BAD_SIGNATURE, f"{what}: assertion signature does not verify", request)
        for seq, request, what, check in items
        if not check_assertion_signature(check)
    ]


def crypto_checks(items: list[Crypto]) -> list[Problem]:
    """Hash and signature of a batch of events (in worker processes when --jobs > 1).

    NOTE: Ed25519 through libsodium (PyNaCl), about twice as fast here as OpenSSL through
    `cryptography`. libsodium is the stricter of the two: besides S < L it refuses non-canonical
    and small-order public keys and R values, which no honest signer produces; nothing OpenSSL
    refuses passes here.
    """
    problems = []
    keys: dict[bytes, VerifyKey | None] = {}
    for seq, request, body_bytes, claimed, sig, public_raw in items:
        actual = event_hash(body_bytes)
        if actual != claimed:
            problems.append(
                Problem(
                    seq,
                    Kind.HASH_MISMATCH,
                    f"body hashes to {actual[:16]}…, line claims {claimed[:16]}…",
                    request,
                )
            )
        if public_raw is None:
            continue
        if public_raw in keys:
            public = keys[public_raw]
        else:
            public = keys[public_raw] = _verify_key(public_raw)
        if public is None or not _verifies(public, body_bytes, sig):
            problems.append(
                Problem(
                    seq,
                    Kind.BAD_SIGNATURE,
                    "signature does not verify with the actor's key",
                    request,
                )
            )
    return problems


def _verifies(public: VerifyKey, body_bytes: bytes, sig: bytes) -> bool:
    try:
        public.verify(signing_message(body_bytes), sig)
    except (BadSignatureError, ValueError, TypeError):  # ValueError: not 64 bytes
        return False
    return True


def _verify_key(public_raw: bytes) -> VerifyKey | None:
    try:
        return VerifyKey(public_raw)
    except (ValueError, TypeError):
        return None


class Pool:
    """Crypto checks in-process (jobs=1) or in worker processes, a bounded number in flight."""

    def __init__(self, jobs: int) -> None:
        # NOTE: jobs counts processes, this one included: it replays while jobs - 1 workers check
        # hashes and signatures (on a 2-core machine, 2 workers plus this one only contend).
        self.executor = ProcessPoolExecutor(max_workers=jobs - 1) if jobs > 1 else None
        self.pending: deque[Future[list[Problem]]] = deque()
        self.limit = max(2, jobs * 3)

    def submit(
        self,
        batch: list[Crypto],
        report: Report,
        assertions: list[AssertionCrypto] | None = None,
    ) -> None:
        if batch:
            self._submit(crypto_checks, batch, report)
        if assertions:
            self._submit(assertion_checks, assertions, report)

    def _submit(self, check: Callable[[Any], list[Problem]], batch: Any, report: Report) -> None:
        if self.executor is None:
            report.problems.extend(check(batch))
            return
        self.pending.append(self.executor.submit(check, batch))
        while len(self.pending) > self.limit:
            report.problems.extend(self.pending.popleft().result())

    def finish(self, report: Report) -> None:
        while self.pending:
            report.problems.extend(self.pending.popleft().result())

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)
