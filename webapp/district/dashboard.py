"""The district dashboard's access in the district deployment: the signed-in district account's
granted schools, each read through its read-only sessions (webapp.dashboard.district)."""

from __future__ import annotations

from datetime import datetime

from workflow.district_report import SchoolSource, recorded_verification
from workflow.tenancy import District, GrantedSchool

from . import current_district_login


def source_of(school: GrantedSchool) -> SchoolSource:
    """A granted school as the dashboard reads it (its log's last recorded verification too)."""
    return SchoolSource(
        code=school.code,
        name=school.name,
        sessions=school.read_sessions,
        definitions=school.runtime.definitions,
        last_verification=recorded_verification(school.origin),
    )


class DistrictDashboardAccess:
    """webapp.dashboard.district.DistrictAccess over the deployment's district registry."""

    layout = "district/base.html"

    def __init__(self, district: District) -> None:
        self.district = district

    def granted(self) -> list[SchoolSource] | None:
        """The signed-in district account's schools; None without a district session."""
        login = current_district_login()
        if login is None:
            return None
        return [source_of(school) for school in self.district.granted_schools(login)]

    def now(self) -> datetime:
        return self.district.clock()
