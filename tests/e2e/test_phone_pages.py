"""Every page on a phone (390x844, Vietnamese), for each role: axe-core finds no serious or
critical violation, nothing is wider than the screen, no code or English state name shows through,
labels point at real fields, tap targets are at least 44 px high, request numbers never break."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from expense_audit.mandates import local_date
from workflow.runtime import Runtime

from ..factories import QUOTE2, SECRET, School, pay_data

WIDTH = 390
MIN_TAP = 44
_NUMBER = re.compile(r"\d{4}-\d{4}/\d{4,6}")

# What the page itself measures: label targets, tap targets, broken request numbers, width.
_MEASURE = """(limits) => {
  const out = {labels: [], taps: [], numbers: [], width: document.documentElement.scrollWidth, wide: []};
  for (const label of document.querySelectorAll("label[for]")) {
    if (!document.getElementById(label.htmlFor)) out.labels.push(label.htmlFor);
  }
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0
    && getComputedStyle(el).visibility !== "hidden"; };
  for (const el of document.querySelectorAll("a[href], button, summary, select, input:not([type=hidden]), textarea")) {
    if (!visible(el)) continue;
    let target = el;
    // A checkbox inside its label is tapped through the label.
    if (el.matches("input[type=checkbox], input[type=radio]") && el.closest("label")) target = el.closest("label");
    if (el.matches("input[type=file]") && el.closest("label")) continue;
    const r = target.getBoundingClientRect();
    if (r.height < limits.tap) out.taps.push(`${el.tagName.toLowerCase()} «${(el.innerText || el.value || el.name || "").trim().slice(0, 40)}» ${Math.round(r.height)} px`);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const number = /\\d{4}-\\d{4}\\/\\d{4,6}/g;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(number)) {
      const range = document.createRange();
      range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (tops.size > 1) out.numbers.push(m[0]);
    }
  }
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.right > limits.width + 1 && visible(el) && !el.closest(".scroll")) out.wide.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(r.right)} px`);
  }
  out.wide = out.wide.slice(0, 5);
  // A closed select shows one option: each must fit, or be shown whole right after it.
  const canvas = document.createElement("canvas").getContext("2d");
  out.cut = [];
  for (const select of document.querySelectorAll("select")) {
    if (!visible(select)) continue;
    const style = getComputedStyle(select);
    canvas.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
    const shownAfter = select.nextElementSibling && select.nextElementSibling.matches(".choice-full");
    for (const option of select.options) {
      if (canvas.measureText(option.text).width > room && !shownAfter) out.cut.push(option.text);
    }
  }
  out.cut = out.cut.slice(0, 3);
  return out;
}"""


def english_codes(runtime: Runtime) -> set[str]:
    """Words that are codes, not Vietnamese: line and source codes, trigger and state names."""
    definitions = runtime.definitions
    workflow = definitions.workflow()
    words: set[str] = set(workflow.states)
    words |= {t.trigger for t in workflow.transitions}
    vietnamese = ""
    for catalogue in definitions.catalogues.values():
        words |= set(catalogue.lines) | set(catalogue.sources)
        vietnamese += " ".join(ln.name["vi"] for ln in catalogue.lines.values())
        vietnamese += " ".join(name["vi"] for name in catalogue.sources.values())
    # A code that is also part of a Vietnamese name ("... trực tuyến (LMS)") is not a leak.
    return {w for w in words if not re.search(rf"\b{re.escape(w)}\b", vietnamese)}


def problems_of(page: Any, axe_source: str, codes: set[str]) -> list[str]:
    """Everything wrong with the page as it is now on the phone."""
    found: list[str] = []
    measured = page.evaluate(_MEASURE, {"tap": MIN_TAP, "width": WIDTH})
    if measured["width"] > WIDTH:
        found.append(f"{measured['width']} px wide: {measured['wide']}")
    found += [f"label for missing #{target}" for target in measured["labels"]]
    found += [f"tap target under {MIN_TAP} px: {tap}" for tap in measured["taps"]]
    found += [f"request number broken over two lines: {n}" for n in measured["numbers"]]
    found += [f"select option cut: {option}" for option in measured["cut"]]
    text = page.inner_text("body")
    leaks = sorted(w for w in codes if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text))
    if leaks:
        found.append(f"codes instead of Vietnamese: {leaks}")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Through the DevTools protocol: the app's CSP (script-src 'self') stays as it is.
        page.evaluate(axe_source + "\n;void 0")
    result = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`)"""
    )
    found += [f"axe {violation}" for violation in result]
    return found


def _state_requests(school: School) -> dict[str, str]:
    """One request in each state a page shows differently, plus a resubmitted one."""
    numbers = {
        "returned": school.to_state("returned"),
        "forwarded": school.to_state("forwarded", line="WEB", amount="2.000.000"),
        "submitted": school.to_state("submitted", line="PRINT", amount="400.000"),
        "approved": school.to_state("approved", line="PRINT", amount="450.000"),
        "paid": school.to_state("approved", line="SW-IMAS", amount="1.700.000"),
        "draft": school.draft(amount="3.000.000"),  # over the norm of SW-ASSET
    }
    school.act(numbers["paid"], "pay", "mai", data=pay_data(1_700_000))
    again = school.to_state("returned", budget_year=2024)
    with school.runtime.transaction() as session:
        session_service = school.runtime.service(session)
        session_service.update_draft(
            again,
            school.user("hanh"),
            amount="1.500.000",
            attachments=[{"name": "bao-gia-1.pdf", "sha256": "a" * 64}, QUOTE2],
        )
    school.act(again, "submit", "hanh")
    numbers["resubmitted"] = again
    # Toàn is away for a week and Long signs for him (KT.): the mandates pages have content, and
    # Long's queues show what a deputy acting as principal sees.
    today = local_date(school.runtime.now())
    with school.runtime.transaction() as session:
        session_service = school.runtime.service(session)
        toan = session_service.directory.get_user("toan")
        assert toan is not None
        session_service.mandates.grant(
            toan,
            SECRET,
            delegate="long",
            role="approver",
            kind="KT",
            valid_from=today,
            valid_to=today + timedelta(days=7),
        )
    return numbers


def _paths(numbers: dict[str, str]) -> dict[str, list[str]]:
    signed = [f"/requests/{n}" for state, n in numbers.items() if state != "draft"]
    every_request = [f"/requests/{numbers['draft']}", *signed]
    return {
        "hanh": [
            "/requests/mine",
            "/requests/new",
            f"/requests/{numbers['draft']}/edit",
            f"/requests/{numbers['returned']}/edit",
            "/signing-key",
            "/password",
            "/account",
            *every_request,
        ],
        "long": ["/review", "/approvals", "/mandates", *signed],
        "toan": ["/approvals", "/ledger", "/audit", "/mandates", *signed],
        "mai": ["/payments", "/ledger", "/mandates", *signed],
        "kiem": ["/audit", "/ledger", *signed],
        "admin": ["/admin/users", "/admin/mail", "/admin/sign-ins"],
    }


def test_every_page_fits_a_phone_reads_in_vietnamese_and_passes_axe(
    page: Any,
    phone: Callable[[str], Any],
    school: School,
    axe_source: str,
    shots: Path,
) -> None:
    numbers = _state_requests(school)
    codes = english_codes(school.runtime)
    failures: list[str] = []
    page.goto("/login")
    page.screenshot(path=shots / "phone-login.png", full_page=True)
    failures += [f"/login: {p}" for p in problems_of(page, axe_source, codes)]
    for login, paths in _paths(numbers).items():
        person = phone(login)
        for path in paths:
            response = person.goto(path)
            assert response is not None and response.status == 200, (login, path)
            name = re.sub(r"[^a-z0-9]+", "-", f"{login}{path}").strip("-")
            person.screenshot(path=shots / f"phone-{name}.png", full_page=True)
            failures += [f"{login} {path}: {p}" for p in problems_of(person, axe_source, codes)]
        person.context.close()
    (shots / "phone-problems.txt").write_text("\n".join(failures), encoding="utf-8")
    assert not failures, "\n".join(failures)


def test_a_long_budget_line_chosen_on_a_phone_is_shown_whole(phone: Callable[[str], Any]) -> None:
    hanh = phone("hanh")
    hanh.goto("/requests/new")
    hanh.select_option("#line", "LMS")
    name = "Tài khoản bồi dưỡng thường xuyên trực tuyến (LMS)"
    assert hanh.locator("#line + .choice-full").inner_text() == name
    assert hanh.locator("#line + .choice-full").is_visible()


def test_the_principal_sees_every_tab_without_scrolling_the_menu(
    phone: Callable[[str], Any],
) -> None:
    toan = phone("toan")
    tabs = toan.locator("nav.tabs a")
    assert tabs.count() == 5  # my requests, approve, ledger, audit, mandates
    for index in range(tabs.count()):
        box = tabs.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH
