"""Mandates on the server: granting and revoking them as signed decisions, finding one for a step.

The rules are the verifier's (expense_audit.mandates); the `mandates` table is an index of the
grant events in the log, kept in the same transaction as each grant and revocation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from expense_audit.decision import check_decision, make_decision, server_signature
from expense_audit.errors import DataInvalid, NotPermitted
from expense_audit.mandates import (
    GRANT,
    NEVER_RECEIVE,
    REVOKE,
    Mandate,
    MandateRefused,
    check_delegate,
    check_grant,
    check_ref,
    check_revoke,
    check_use,
    local_date,
    parse_grant,
)
from expense_audit.mandates import (
    UNKNOWN as MANDATE_UNKNOWN,
)

from .audit import append_decision, format_ts, lock_head
from .clock import Clock, utcnow
from .db import begin_write, reading_first
from .directory import Directory
from .enrollment import same_except_issued
from .models import AuditEvent, MandateRow, SigningKey, User
from .signatures import keep_counter, verify_signature

# Titles of the roles on papers and mails ("KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long").
ROLE_TITLES: Mapping[str, Mapping[str, str]] = {
    "approver": {"vi": "HIỆU TRƯỞNG", "en": "PRINCIPAL"},
    "reviewer": {"vi": "PHÓ HIỆU TRƯỞNG", "en": "DEPUTY PRINCIPAL"},
    "accountant": {"vi": "KẾ TOÁN", "en": "ACCOUNTANT"},
}


def to_mandate(row: MandateRow) -> Mandate:
    """The verifier's view of a stored mandate."""
    return Mandate(
        seq=row.seq,
        hash=row.hash,
        delegator=row.delegator,
        delegate=row.delegate,
        role=row.role,
        kind=row.kind,
        valid_from=date.fromisoformat(row.valid_from),
        valid_to=date.fromisoformat(row.valid_to),
        lines=tuple(row.lines or ()),
        max_amount_vnd=row.max_amount_vnd,
        revoked_seq=row.revoked_seq,
    )


def signature_line(mandate: Mandate, signer: User, language: str = "vi") -> str:
    """How a step under a mandate is signed on paper: "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Long"."""
    lang = language if language in ("vi", "en") else "vi"
    head = ROLE_TITLES.get(mandate.role, {}).get(lang, mandate.role.upper())
    own = next((ROLE_TITLES[r][lang] for r in ("reviewer", "accountant") if signer.has_role(r)), "")
    return f"{mandate.kind}. {head} / {own + ' ' if own else ''}{signer.name}"


# Built once: read at the steps the definition keeps apart from acting for someone.
_HELD = (
    select(MandateRow)
    .where(MandateRow.delegate == bindparam("login"), MandateRow.revoked_seq.is_(None))
    .order_by(MandateRow.seq)
)
_HELD_FOR = _HELD.where(MandateRow.role.in_(bindparam("roles", expanding=True)))


class Mandates:
    """Grant, revoke and look up mandates; every change is a decision the delegator signs."""

    def __init__(
        self,
        session: Session,
        *,
        directory: Directory,
        clock: Clock = utcnow,
        receivers: Collection[str] = ("proposer", "reviewer", "approver", "accountant"),
    ) -> None:
        self.session, self.directory, self.clock = session, directory, clock
        # who may receive a mandate: a holder of one of these roles (the workflow definition's
        # [mandates] receivers), and never an admin or an auditor
        self.receivers = frozenset(receivers) - set(NEVER_RECEIVE)

    # --- reading ------------------------------------------------------------------------------

    def get(self, seq: int) -> Mandate | None:
        """The mandate granted at ``seq``, or None."""
        row = self.session.get(MandateRow, seq)
        return to_mandate(row) if row is not None else None

    def held_by(self, login: str, roles: Collection[str] | None = None) -> list[Mandate]:
        """Mandates given to ``login`` and not revoked (any date), for ``roles`` if given."""
        if roles is None:
            rows = self.session.scalars(_HELD, {"login": login})
        else:
            rows = self.session.scalars(_HELD_FOR, {"login": login, "roles": list(roles)})
        return [to_mandate(r) for r in rows]

    def granted_by(self, login: str) -> list[Mandate]:
        """Every mandate ``login`` granted (revoked ones too), newest first."""
        rows = self.session.scalars(
            select(MandateRow).where(MandateRow.delegator == login).order_by(MandateRow.seq.desc())
        )
        return [to_mandate(r) for r in rows]

    def live_for(self, login: str, roles: Collection[str] | None = None) -> list[Mandate]:
        """Mandates ``login`` may act under today (dates, not revoked, delegator holds the role)."""
        today = local_date(self.clock())
        live = []
        for mandate in self.held_by(login, roles):
            if not mandate.valid_from <= today <= mandate.valid_to:
                continue
            delegator = self.directory.get_user(mandate.delegator)
            if delegator is not None and delegator.active and delegator.has_role(mandate.role):
                live.append(mandate)
        return live

    def acting_roles(self, login: str) -> set[str]:
        """Roles ``login`` acts in today under a mandate (beyond their own)."""
        return {mandate.role for mandate in self.live_for(login)}

    def for_step(
        self, actor: User, roles: Sequence[str], *, line: str, amount_vnd: int
    ) -> Mandate | None:
        """The mandate under which ``actor`` may take a step needing one of ``roles`` today.

        None when the actor holds no mandate for these roles; the refusal of the closest one
        when none fits (expired, out of scope ...).
        """
        held = self.held_by(actor.login, roles)
        if not held:
            return None
        today = local_date(self.clock())
        refusals: list[MandateRefused] = []
        for mandate in held:
            delegator = self.directory.get_user(mandate.delegator)
            try:
                check_use(
                    mandate,
                    actor=actor.login,
                    role=mandate.role,
                    on=today,
                    line=line,
                    amount_vnd=amount_vnd,
                    delegator_roles=delegator.role_list
                    if delegator is not None and delegator.active
                    else (),
                )
            except MandateRefused as refusal:
                refusals.append(refusal)
                continue
            return mandate
        raise refusals[0]

    # --- granting -----------------------------------------------------------------------------

    def prepare_grant(
        self,
        delegator: User,
        *,
        delegate: str,
        role: str,
        kind: str,
        valid_from: date,
        valid_to: date,
        lines: Sequence[str] = (),
        max_amount_vnd: int | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """The mandate.grant decision ``delegator`` would sign now (checked, nothing written)."""
        data = {
            "delegator": delegator.login,
            "delegate": delegate,
            "role": role,
            "kind": kind,
            "from": valid_from.isoformat(),
            "to": valid_to.isoformat(),
            "lines": list(lines),
            "max_amount_vnd": max_amount_vnd,
        }
        decision = self._decision(delegator, GRANT, role, data, comment)
        self._check(decision, seq=0, event_hash="0" * 64)
        return decision

    def prepare_revoke(
        self, delegator: User, seq: int, comment: str | None = None
    ) -> dict[str, Any]:
        """The mandate.revoke decision that ends the mandate granted at ``seq``."""
        mandate = self._existing({"seq": seq, "hash": self._hash_of(seq)})
        decision = self._decision(delegator, REVOKE, mandate.role, mandate.ref, comment)
        self._check(decision, seq=0, event_hash="0" * 64)
        return decision

    def commit(
        self, decision: Mapping[str, Any], signature: Mapping[str, Any], actor: User
    ) -> AuditEvent:
        """Append a signed grant or revocation: every check again under the write lock.

        A refusal raises a WorkflowError and the caller rolls back: nothing is written.
        """
        # 1. Well formed, and the actor's own grant or revocation.
        checked = check_decision(decision)
        if checked["actor"] != actor.login or checked["action"] not in (GRANT, REVOKE):
            raise NotPermitted(
                "Quyết định này không phải của bạn.",
                en="This decision is not yours.",
                field="decision",
            )
        # 2. In a read_first() session (the web's signing views), steps 3-4 run first without
        # the write lock, the signature included, and again under it (without the signature).
        verified = None
        if reading_first(self.session):
            key = self._check_signed(checked, actor, seq=0)
            verified = verify_signature(key, checked, signature)
            begin_write(self.session)  # everything read so far is read again under the lock
        # 3. The write lock (in turn) and the log head; then the decision is still the one the
        # server would prepare now (the mandate not revoked meanwhile, the delegate still
        # active ...), signed with the actor's key of now.
        head = lock_head(self.session)
        key = self._check_signed(checked, actor, seq=head.seq + 1)
        # 4. The signature: verified before the lock by the same key (not revoked or replaced
        # meanwhile), or now; a passkey's counter rises; a server-held key that signed starts
        # its count of wrong secrets again.
        if verified is None:
            verified = verify_signature(key, checked, signature)
        keep_counter(key, verified, signature)
        if key.failed_attempts:
            key.failed_attempts = 0
        # 5. Append, and keep the index of mandates.
        event = append_decision(
            self.session, decision=checked, signature=signature, ts=self.clock(), head=head
        )
        if checked["action"] == GRANT:
            mandate = parse_grant(checked["data"], seq=event.seq, event_hash=event.hash)
            self.session.add(
                MandateRow(
                    seq=mandate.seq,
                    hash=mandate.hash,
                    delegator=mandate.delegator,
                    delegate=mandate.delegate,
                    role=mandate.role,
                    kind=mandate.kind,
                    valid_from=mandate.valid_from.isoformat(),
                    valid_to=mandate.valid_to.isoformat(),
                    lines=list(mandate.lines),
                    max_amount_vnd=mandate.max_amount_vnd,
                )
            )
        else:
            row = self.session.get(MandateRow, int(checked["data"]["seq"]))
            if row is not None:  # _check found it
                row.revoked_seq = event.seq
        self.session.flush()
        return event

    def _check_signed(self, checked: Mapping[str, Any], actor: User, *, seq: int) -> SigningKey:
        """Step 3 of commit(): the decision as it would be prepared now, the rules, the key."""
        key = self.directory.keyring.signing_key(actor)
        expected = self._decision(
            actor, checked["action"], checked["role"], checked["data"], checked["comment"]
        )
        same_except_issued(checked, expected)
        self._check(checked, seq=seq, event_hash="0" * 64)
        if checked["key"] != key.key_id:
            raise DataInvalid(
                "Khóa ký đã thay đổi: hãy ký lại.",
                en="Your signing key changed: sign again.",
                field="key",
            )
        return key

    def grant(self, delegator: User, secret: str, **mandate: Any) -> AuditEvent:
        """Grant a mandate signed with the delegator's server-held key (the web's form, CLI,
        demo); in a read_first() session the key unlocks before the write lock."""
        decision = self.prepare_grant(delegator, **mandate)
        _key, signer = self.directory.keyring.unlock(delegator, secret, reset_failures=False)
        return self.commit(decision, server_signature(decision, signer.private), delegator)

    def revoke(
        self, delegator: User, seq: int, secret: str, comment: str | None = None
    ) -> AuditEvent:
        """Revoke a mandate early, signed with the delegator's server-held key."""
        decision = self.prepare_revoke(delegator, seq, comment)
        _key, signer = self.directory.keyring.unlock(delegator, secret, reset_failures=False)
        return self.commit(decision, server_signature(decision, signer.private), delegator)

    # --- helpers ------------------------------------------------------------------------------

    def _decision(
        self,
        actor: User,
        action: str,
        role: str,
        data: Mapping[str, Any],
        comment: str | None,
    ) -> dict[str, Any]:
        key = self.directory.keyring.signing_key(actor)
        return make_decision(
            origin=self.directory.keyring.origin,
            request=None,
            request_prev=None,
            action=action,
            from_state=None,
            to_state=None,
            actor=actor.login,
            role=role,
            key=key.key_id,
            definition=None,
            budget=None,
            data=data,
            comment=(comment or "").strip() or None,
            issued=format_ts(self.clock()),
        )

    def _check(self, decision: Mapping[str, Any], *, seq: int, event_hash: str) -> None:
        """The verifier's rules for a grant or a revocation, on the server's data."""
        actor = self.directory.get_user(str(decision["actor"]))
        if actor is None or not actor.active:
            raise NotPermitted("Tài khoản đã bị khóa.", en="This account is locked.", field="actor")
        if decision["action"] == REVOKE:
            check_revoke(self._existing(decision["data"]), actor=actor.login)
            return
        mandate = parse_grant(decision["data"], seq=seq, event_hash=event_hash)
        today = local_date(self.clock())
        check_grant(
            mandate,
            actor=actor.login,
            role=str(decision["role"]),
            actor_roles=actor.role_list,
            actor_mandates=[
                m for m in self.held_by(actor.login) if m.valid_from <= today <= m.valid_to
            ],
            on=today,
        )
        delegate = self.directory.get_user(mandate.delegate)
        if delegate is None or not delegate.active:
            raise MandateRefused(
                f"Không có tài khoản đang hoạt động «{mandate.delegate}».",
                en=f"There is no active account {mandate.delegate!r}.",
                problem="mandate-invalid",
            )
        check_delegate(
            mandate,
            name=delegate.name,
            delegate_roles=delegate.role_list,
            receivers=self.receivers,
        )

    def _existing(self, ref: Any) -> Mandate:
        checked = check_ref(ref)
        mandate = self.get(checked["seq"])
        if mandate is None or mandate.hash != checked["hash"]:
            raise MandateRefused(
                "Không có giấy ủy quyền này.",
                en="There is no such mandate.",
                problem=MANDATE_UNKNOWN,
            )
        return mandate

    def _hash_of(self, seq: int) -> str:
        row = self.session.get(MandateRow, seq)
        return row.hash if row is not None else "0" * 64
