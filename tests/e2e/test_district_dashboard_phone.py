"""The district dashboard of the multi-school deployment on a phone (PostgreSQL): a district
account signs in at /district/, opens the dashboard and a school's, and each fits the screen and
passes axe-core, in the district's own layout."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from workflow.tenancy import District

from ..district import INSPECTOR_PASSWORD, deployment, district_app, needs_postgres
from ..factories import School, pay_data
from ..smtp_server import free_port
from .test_phone_pages import english_codes, problems_of

pytestmark = needs_postgres


@pytest.fixture
def district_server(tmp_path: Path) -> Iterator[tuple[str, District]]:
    """Two schools; ``thanhtra`` is granted both; the deployment served on 127.0.0.1."""
    with deployment(tmp_path / "district") as district:
        district.create_user(
            login="thanhtra",
            name="Thanh tra",
            role="district_inspector",
            password=INSPECTOR_PASSWORD,
        )
        for code in ("alpha", "beta"):
            district.grant("thanhtra", code)
            school = School(district.runtime(code))
            paid = school.to_state("approved", line="SW-IMAS", amount="1.700.000")
            school.act(paid, "pay", "mai", data=pay_data(1_700_000))
            school.to_state("submitted", line="PRINT", amount="400.000")
        app = district_app(district, tmp_path / "web")
        port = free_port()
        httpd = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://localhost:{port}", district
        finally:
            httpd.shutdown()
            thread.join(10)
            httpd.server_close()


def test_the_district_dashboard_fits_a_phone_and_passes_axe(
    new_context: Callable[..., Any],
    district_server: tuple[str, District],
    axe_source: str,
    shots: Path,
) -> None:
    url, district = district_server
    page = new_context(base_url=url).new_page()
    page.goto("/district/login")
    page.fill("#login", "thanhtra")
    page.fill("#password", INSPECTOR_PASSWORD)
    page.click("button.primary")
    page.wait_for_load_state()
    page.click("text=" + "Theo dõi chi tiêu các trường")
    codes = english_codes(district.runtime("alpha"))
    failures: list[str] = []
    for path in ("/district/dashboard", "/district/dashboard/beta"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert page.locator("svg[role=img]").count() >= 1, path
        page.screenshot(path=shots / f"district{path.replace('/', '-')}.png", full_page=True)
        failures += [f"{path}: {p}" for p in problems_of(page, axe_source, codes)]
    assert not failures, "\n".join(failures)
