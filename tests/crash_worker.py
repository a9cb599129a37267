"""Child process for the crash test: drives requests through the chain until it is killed."""

from __future__ import annotations

import sys
from pathlib import Path

from workflow.runtime import Runtime, Settings

from .factories import SECRET, pay_data

STEPS = [("submit", "hanh"), ("forward", "long"), ("approve", "toan"), ("pay", "mai")]


def main(database_url: str, keys_dir: str) -> None:
    runtime = Runtime(Settings(database_url=database_url, keys_dir=Path(keys_dir), scrypt_n=2**10))
    while True:
        with runtime.transaction() as session:
            service = runtime.service(session)
            owner = service.directory.get_user("hanh")
            assert owner is not None
            number = service.create_draft(
                owner,
                school_year="2024-2025",
                title="EnetViet",
                line="ENETVIET",
                source="THU-DL",
                budget_year=2025,
                quantity=1,
                unit_price_vnd="15.000",
            ).number
        for trigger, login in STEPS:
            with runtime.transaction() as session:
                service = runtime.service(session)
                user = service.directory.get_user(login)
                assert user is not None
                data = (
                    pay_data(amount=15_000, paid_on=runtime.now().date().isoformat())
                    if trigger == "pay"
                    else None
                )
                service.act(number, trigger, user, SECRET, data=data)
            print(f"{number} {trigger}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
