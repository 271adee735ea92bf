"""Raising the soft open-file limit, checked in a child process started under prlimit
(the test runner's own limits are left alone)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = (
    "import json, resource\n"
    "from p2psync.oslimits import raise_open_file_limit, open_file_soft_limit\n"
    "r = raise_open_file_limit()\n"
    "print(json.dumps([r.before, r.after, r.hard, open_file_soft_limit(),"
    " resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))\n"
)


def run_under(soft: int, hard: int) -> list[int]:
    out = subprocess.run(
        ["prlimit", f"--nofile={soft}:{hard}", "--", sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize(("soft", "hard"), [(256, 4096), (1024, 1024), (100, 101)])
def test_soft_limit_is_raised_to_the_hard_limit(soft: int, hard: int) -> None:
    before, after, reported_hard, seen, actual = run_under(soft, hard)
    assert (before, after, reported_hard) == (soft, hard, hard)
    assert seen == actual == hard
