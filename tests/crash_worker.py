"""Child process for the crash test: drives requests along the ordinary path until it is killed."""

from __future__ import annotations

import sys
from pathlib import Path

from workflow import journeys
from workflow.runtime import Runtime, Settings

from .factories import SECRET


def main(database_url: str, keys_dir: str) -> None:
    runtime = Runtime(Settings(database_url=database_url, keys_dir=Path(keys_dir), scrypt_n=2**10))
    while True:
        number = journeys.propose(runtime, **journeys.SMALL_REQUEST)
        for event in journeys.walk(runtime, number, SECRET):
            print(f"{number} {event.action}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
