"""The accountant's paperwork: payee, tax code, bank, invoice and budget codes, bound and checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.vn import mst

from expense_audit.definitions import DefinitionSet
from expense_audit.errors import DataInvalid, DefinitionError
from expense_audit.guards import check_content, check_tax_code
from expense_audit.projection import PAPERWORK_FIELDS
from expense_audit.verify import verify_bundle
from workflow import service as service_module
from workflow.audit import event_view
from workflow.bundle import export_bundle
from workflow.errors import RequestNotFound

from .bundle_tools import Bundle, fields
from .factories import QUOTE, School, pay_data

DEFINITIONS = Path(__file__).parents[1] / "definitions"
CATALOGUE = (DEFINITIONS / "budgets" / "2024-2025.toml").read_bytes()
# A real, published tax code (Tổng công ty Bưu điện Việt Nam) and a branch form of it.
TAX_CODE = "0100109106"
PAYEE = {
    "payee": "Công ty TNHH Phần mềm Demo",
    "payee_kind": "organisation",
    "tax_code": TAX_CODE,
    "bank_account": "0011004123456",
    "bank": "Vietcombank – CN Hà Nội",
}
INVOICE = {"invoice_number": "00001234", "invoice_series": "1C25TAA", "invoice_date": "2025-01-13"}


def _export(school: School, path: Path) -> Path:
    with school.runtime.transaction() as session:
        export_bundle(
            session, path, institution=school.runtime.institution, now=school.runtime.now()
        )
    return path


def test_payee_and_invoice_are_bound_into_events_and_projected(
    school: School, tmp_path: Path
) -> None:
    number = school.to_state("approved", **PAYEE)
    event = school.act(number, "pay", "mai", data={**pay_data(), **INVOICE})
    body = event_view(json.loads(event.body))
    assert body["data"]["content"]["tax_code"] == TAX_CODE
    assert body["data"]["payment"]["invoice_number"] == "00001234"
    row = school.request(number)
    assert row is not None
    assert (row.payee, row.payee_kind, row.tax_code, row.bank_account, row.bank) == tuple(
        PAYEE.values()
    )
    assert (row.invoice_number, row.invoice_series, row.invoice_date) == tuple(INVOICE.values())
    report = verify_bundle(_export(school, tmp_path / "b.zip"))
    assert report.valid, report.problems
    assert report.requests[number]["tax_code"] == TAX_CODE


@pytest.mark.parametrize(
    "tax_code",
    ["123456789", "0100109107", "01001091061", "0100109106-000", "0100109106001", "01O0109106"],
)
def test_wrong_tax_code_is_a_field_error_and_no_draft_is_saved(
    school: School, tax_code: str
) -> None:
    before = school.snapshot("2024-2025/0001")
    with pytest.raises(DataInvalid, match="Mã số thuế") as refusal:
        school.draft(**{**PAYEE, "tax_code": tax_code})
    assert refusal.value.details["field"] == "tax_code"
    assert "tax code" in refusal.value.text("en")
    assert school.snapshot("2024-2025/0001") == before
    with pytest.raises(RequestNotFound):
        school.act("2024-2025/0001", "submit", "hanh")


def test_branch_tax_code_in_dash_form_is_accepted(school: School) -> None:
    number = school.to_state("submitted", **{**PAYEE, "tax_code": f"{TAX_CODE}-001"})
    row = school.request(number)
    assert row is not None and row.tax_code == f"{TAX_CODE}-001"


PERSONAL_ID = "001089012345"  # Hà Nội (001), a man born in 1989: the shape of a căn cước number


def test_a_persons_12_digit_identification_number_is_their_tax_code(
    school: School, tmp_path: Path
) -> None:
    person = {**PAYEE, "payee": "Nguyễn Văn Bình", "payee_kind": "person"}
    number = school.to_state("submitted", **{**person, "tax_code": PERSONAL_ID})
    row = school.request(number)
    assert row is not None and row.tax_code == PERSONAL_ID
    report = verify_bundle(_export(school, tmp_path / "b.zip"))
    assert report.valid, report.problems


@pytest.mark.parametrize(
    ("kind", "tax_code"),
    [
        ("organisation", PERSONAL_ID),  # an organisation has no personal number
        ("person", "003089012345"),  # 003 is no province's code
        ("person", "001789012345"),  # century digit 7: born in the 2300s
        ("person", "00108901234"),  # 11 digits
    ],
)
def test_a_12_digit_number_is_refused_where_it_cannot_be_a_persons_id(
    school: School, kind: str, tax_code: str
) -> None:
    with pytest.raises(DataInvalid, match="số định danh cá nhân") as refusal:
        school.draft(**{**PAYEE, "payee_kind": kind, "tax_code": tax_code})
    assert refusal.value.details["field"] == "tax_code"


@given(st.from_regex(r"[0-9]{10}(-[0-9]{3})?", fullmatch=True))
def test_tax_code_check_agrees_with_python_stdnum(value: str) -> None:
    assert check_tax_code(value) == mst.is_valid(value)


@pytest.mark.parametrize(
    ("invoice_date", "problem"),
    [("2025-01-20", "sau ngày thanh toán"), ("2024-12-01", "trước ngày lập đề xuất")],
)
def test_invoice_dated_after_payment_or_before_the_request_is_refused(
    school: School, invoice_date: str, problem: str
) -> None:
    number = school.to_state("approved")
    before = school.snapshot(number)
    with pytest.raises(DataInvalid, match=problem) as refusal:
        school.act(
            number, "pay", "mai", data={**pay_data(), **INVOICE, "invoice_date": invoice_date}
        )
    assert refusal.value.details["field"] == "invoice_date"
    assert school.snapshot(number) == before


def test_invoice_number_is_needed_when_an_invoice_is_entered_at_payment(school: School) -> None:
    number = school.to_state("approved")
    with pytest.raises(DataInvalid, match="số hóa đơn") as refusal:
        school.act(number, "pay", "mai", data={**pay_data(), "invoice_date": "2025-01-13"})
    assert refusal.value.details["field"] == "invoice_number"


def _content(**changes: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "title": "Phần mềm",
        "description": "",
        "line": "SW-ASSET",
        "source": "NSNN-TX",
        "budget_year": 2025,
        "quantity": 1,
        "unit_price_vnd": 1_800_000,
        "amount_vnd": 1_800_000,
        "attachments": [QUOTE],
    }
    content.update(changes)
    return content


def test_payee_missing_where_the_plan_requires_it_is_refused() -> None:
    strict = CATALOGUE.replace(b"payee_required = false", b"payee_required = true")
    catalogue = DefinitionSet.from_files({"budgets/2024-2025.toml": strict}).catalogue("2024-2025")
    with pytest.raises(DataInvalid, match="cần ghi người nhận tiền") as refusal:
        check_content(_content(), catalogue)
    assert refusal.value.details["field"] == "payee"
    check_content(_content(**PAYEE), catalogue)
    shipped = DefinitionSet.from_directory(DEFINITIONS).catalogue("2024-2025")
    check_content(_content(), shipped)  # the shipped plan leaves the payee optional


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"payee": "Nguyễn Văn A", "payee_kind": None}, "payee_kind"),
        ({"payee": "Nguyễn Văn A", "payee_kind": "cat"}, "payee_kind"),
        ({"tax_code": TAX_CODE}, "payee"),
        ({**PAYEE, "bank": None}, "bank"),
        ({**PAYEE, "bank_account": "12-34"}, "bank_account"),
        ({"invoice_number": "1", "invoice_date": "2025-02-30"}, "invoice_date"),
        (
            {"invoice_series": "1C25 TAA", "invoice_number": "1", "invoice_date": "2025-01-13"},
            "invoice_series",
        ),
    ],
)
def test_inconsistent_paperwork_names_its_field(changes: dict[str, Any], field: str) -> None:
    catalogue = DefinitionSet.from_directory(DEFINITIONS).catalogue("2024-2025")
    with pytest.raises(DataInvalid) as refusal:
        check_content(_content(**changes), catalogue)
    assert refusal.value.details["field"] == field


def test_budget_codes_and_unit_code_are_validated_data() -> None:
    catalogue = DefinitionSet.from_directory(DEFINITIONS).catalogue("2024-2025")
    assert catalogue.unit_code is not None and len(catalogue.unit_code) == 7
    assert all(line.mlns is not None for line in catalogue.lines.values())
    web = catalogue.lines["WEB"].mlns
    assert web is not None and (web.chuong, web.loai, web.khoan) == ("622", "070", "072")
    for old, new, key in [
        (b'unit_code = "1012345"', b'unit_code = "12345"', "catalogue.unit_code"),
        (
            b'chuong = "622", loai_khoan = "070-072", muc_tieu_muc = "6650-6652"',
            b'chuong = "622", loai_khoan = "070-102", muc_tieu_muc = "6650-6652"',
            "lines.TRAINER.mlns.loai_khoan",
        ),
        (
            b'chuong = "622", loai_khoan = "070-072", muc_tieu_muc = "6650-6652"',
            b'chuong = "622", loai_khoan = "070-072", muc_tieu_muc = "6650-6750"',
            "lines.TRAINER.mlns.muc_tieu_muc",
        ),
        (
            b'chuong = "622", loai_khoan = "070-072", muc_tieu_muc = "6650-6652"',
            b'chuong = "62", loai_khoan = "070-072", muc_tieu_muc = "6650-6652"',
            "lines.TRAINER.mlns.chuong",
        ),
    ]:
        assert old in CATALOGUE
        with pytest.raises(DefinitionError) as error:
            DefinitionSet.from_files({"budgets/2024-2025.toml": CATALOGUE.replace(old, new, 1)})
        assert error.value.key == key


def test_events_written_before_the_paperwork_fields_still_verify(
    school: School, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old engine wrote content without the paperwork fields: the verifier reads them as None."""

    def old_draft_content(draft: Any) -> dict[str, Any]:
        content = original_draft(draft)
        return {k: v for k, v in content.items() if k not in PAPERWORK_FIELDS}

    def old_content_of(projection: Any) -> dict[str, Any]:
        content = original_of(projection)
        return {k: v for k, v in content.items() if k not in PAPERWORK_FIELDS}

    original_draft, original_of = service_module.draft_content, service_module.content_of
    monkeypatch.setattr(service_module, "draft_content", old_draft_content)
    monkeypatch.setattr(service_module, "content_of", old_content_of)
    old = school.to_state("approved")
    school.act(old, "pay", "mai", data=pay_data())
    monkeypatch.undo()
    new = school.to_state("submitted", line="WEB", amount="2.400.000", **PAYEE)
    bundle = _export(school, tmp_path / "mixed.zip")
    steps = [fields(line) for line in Bundle.read(bundle).lines if fields(line).get("request")]
    assert [step["request"] for step in steps if "tax_code" not in step["data"]["content"]] == [
        old
    ] * 4
    report = verify_bundle(bundle)
    assert report.valid, report.problems
    assert report.requests[old]["state"] == "paid" and report.requests[old]["payee"] is None
    assert report.requests[new]["payee"] == PAYEE["payee"]


@pytest.mark.parametrize(
    ("login", "roles", "state", "kind", "sees"),
    [
        ("mai", ["accountant"], "approved", "person", True),
        ("thanh", ["auditor"], "paid", "person", True),
        ("hanh", ["proposer"], "paid", "person", True),  # the owner typed it
        ("long", ["reviewer"], "approved", "person", True),  # forwarded this one
        ("toan", ["approver"], "approved", "person", True),  # approved this one
        ("vy", ["reviewer"], "submitted", "person", True),  # may decide on it now
        ("vy", ["reviewer"], "approved", "person", False),  # another reviewer, not theirs
        ("an", ["approver"], "approved", "person", False),  # another approver, afterwards
        ("vy", ["reviewer"], "approved", "organisation", True),  # business data, not personal
    ],
)
def test_a_persons_tax_code_and_account_only_for_accountant_deciders_and_auditors(
    login: str, roles: list[str], state: str, kind: str, sees: bool
) -> None:
    from workflow.policy import can_see_personal_data
    from workflow.service import Current

    projection = {"payee_kind": kind, "forwarded_by": "long", "approved_by": "toan"}
    current = Current("2024-2025/0001", state, "hanh", projection, None)
    assert can_see_personal_data(login, roles, current) is sees
