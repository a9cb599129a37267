"""Request rows as a projection of the log: one pure fold used by the engine and the verifier."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

CORE_CONTENT_FIELDS = (
    "title",
    "description",
    "line",
    "source",
    "budget_year",
    "quantity",
    "unit_price_vnd",
    "amount_vnd",
    "attachments",
)
# The accountant's paperwork (issue 13): who is paid and against which invoice. Events written
# before these existed lack them; a missing paperwork field reads as None, never as an error.
PAPERWORK_FIELDS = (
    "payee",
    "payee_kind",  # "organisation" or "person" (a person's tax code and account are personal data)
    "tax_code",
    "bank_account",
    "bank",
    "invoice_number",
    "invoice_series",
    "invoice_date",
)
CONTENT_FIELDS = (*CORE_CONTENT_FIELDS, *PAPERWORK_FIELDS)
# Invoice data the accountant may enter at payment when it was not known at proposal.
INVOICE_FIELDS = ("invoice_number", "invoice_series", "invoice_date")

PROJECTION_FIELDS = (
    "number",
    "school_year",
    "owner",
    "state",
    *CONTENT_FIELDS,
    "forwarded_by",
    "approved_by",
    "approved_hash",
    "paid_by",
    "voucher",
    "paid_on",
    "amount_paid_vnd",
    "last_comment",
    "created_at",
    "updated_at",
    "last_seq",
    "definition",
)

Projection = dict[str, Any]


def school_year_of(number: str) -> str:
    """'2024-2025/0017' -> '2024-2025'."""
    return number.split("/", 1)[0]


def content_of(projection: Mapping[str, Any]) -> dict[str, Any]:
    """The content fields of a request, as bound into events."""
    return {name: projection.get(name) for name in CONTENT_FIELDS}


def normal_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """An event's content with every field present (older events lack the paperwork fields)."""
    return {name: content.get(name) for name in CONTENT_FIELDS}


def requested_on(projection: Mapping[str, Any] | None) -> date | None:
    """The UTC date of a request's first event (invoices are dated on or after it)."""
    created = (projection or {}).get("created_at")
    return date.fromisoformat(str(created)[:10]) if created else None


def empty_projection(number: str, owner: str, state: str) -> Projection:
    """A request before its first event: known only by number, owner and initial state."""
    projection: Projection = dict.fromkeys(PROJECTION_FIELDS)
    projection.update(number=number, school_year=school_year_of(number), owner=owner, state=state)
    projection["attachments"] = []
    return projection


def apply_event(
    projection: Projection | None,
    body: Mapping[str, Any],
    event_hash: str,
    effects: Collection[str],
) -> Projection:
    """Fold one request event into the request's projection and return the new projection.

    ``effects`` are the transition's effects from its definition (vocabulary.EFFECTS): what the
    step records beyond its new state. No trigger name is interpreted here.
    """
    if projection is None:
        projection = empty_projection(str(body["request"]), str(body["actor"]), str(body["from"]))
        projection["created_at"] = body["ts"]
    else:
        projection = dict(projection)
    data: Mapping[str, Any] = body.get("data") or {}
    content = data.get("content")
    if isinstance(content, Mapping):
        projection.update({name: content.get(name) for name in CONTENT_FIELDS})
    if "clear_decisions" in effects:
        projection.update(forwarded_by=None, approved_by=None, approved_hash=None)
    if "record_forwarder" in effects:
        projection["forwarded_by"] = body["actor"]
    if "record_approval" in effects:
        projection.update(approved_by=body["actor"], approved_hash=event_hash)
    if "record_payment" in effects:
        payment: Mapping[str, Any] = data.get("payment") or {}
        projection.update(
            paid_by=body["actor"],
            voucher=payment.get("voucher"),
            paid_on=payment.get("paid_on"),
            amount_paid_vnd=payment.get("amount_paid_vnd"),
        )
        # An invoice entered at payment completes (or corrects) the one known at proposal.
        if payment.get("invoice_number"):
            projection.update({name: payment.get(name) for name in INVOICE_FIELDS})
    projection.update(
        state=body["to"],
        last_comment=body.get("comment"),
        updated_at=body["ts"],
        last_seq=body["seq"],
        definition=body["definition"],
    )
    return projection
