"""Shared fixtures for the reliability suite, and the outcome recorder behind
docs/reliability.md.

Each test records what it tried through the ``outcomes`` fixture. When
``P2PSYNC_RELIABILITY_OUT`` names a file, the records are appended to it as JSON lines
after each test, with the test's verdict folded in: a failing test turns its records
into "failed", an expected failure (known engine bug) into "engine bug (xfail)".
``tools/reliability_report.py`` renders that file as a table.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))  # nodes.py (Cluster, wait_for, ...)

OUT_ENV = "P2PSYNC_RELIABILITY_OUT"
SOAK_ENV = "P2PSYNC_SOAK"


def soak_enabled() -> bool:
    return os.environ.get(SOAK_ENV, "") not in ("", "0")


@dataclass
class Record:
    area: str  # network, process, disk, database, clock, decoder, peer, discovery, api, load
    fault: str  # what was done, in a few words
    outcome: str  # converged, rejected, paused then resumed, bounded, ...
    trials: int = 1
    detail: str = ""
    test: str = ""
    data_lost: bool = False


@dataclass
class Outcomes:
    """What a test tried; see the module docstring."""

    test: str
    records: list[Record] = field(default_factory=list)

    def record(
        self, area: str, fault: str, outcome: str, *, trials: int = 1, detail: str = ""
    ) -> None:
        self.records.append(Record(area, fault, outcome, trials, detail, self.test))


_KEY = pytest.StashKey[Outcomes]()


@pytest.fixture
def outcomes(request: pytest.FixtureRequest) -> Outcomes:
    rec = Outcomes(test=request.node.nodeid)
    request.node.stash[_KEY] = rec
    return rec


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    rec = item.stash.get(_KEY, None)
    path = os.environ.get(OUT_ENV)
    if rec is None or not path:
        return
    if hasattr(report, "wasxfail"):
        verdict = "engine bug (xfail)"
    elif report.failed:
        verdict = "failed"
    else:
        verdict = None
    records = rec.records or [Record("other", item.name, "passed", test=item.nodeid)]
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            row = asdict(r)
            if verdict is not None:
                row["outcome"] = verdict
                row["detail"] = (str(report.longrepr).splitlines() or [""])[-1][:200]
            row["seconds"] = round(report.duration, 2)
            f.write(json.dumps(row) + "\n")
