"""glibc's thresholds, fixed at start so freed transfer buffers are reused."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

ROOT = Path(__file__).resolve().parents[2]

# Two 300 KiB buffers allocated and freed in turn, as a transfer's reads and messages
# are: prints the page faults of 200 rounds (after a warm-up).
_CHURN = """
import json, resource, sys
from p2psync.allocator import keep_freed_memory
tuning = keep_freed_memory() if sys.argv[1] == "tuned" else None
def rounds(n):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(n):
        a = bytes([i % 251]) * (300 * 1024)
        b = bytes([i % 241]) * (300 * 1024)
        del a, b
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
rounds(5)
print(json.dumps([rounds(200), tuning and tuning.applied, tuning and tuning.reason]))
"""


def _run(mode: str, **env: str) -> tuple[int, bool | None, str | None]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", _CHURN, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    faults, applied, reason = json.loads(done.stdout)
    return faults, applied, reason


def test_freed_buffers_are_reused_once_tuned() -> None:
    faults, applied, _ = _run("tuned")
    assert applied is True
    assert faults < 200  # 75 pages a buffer: faulting them in every round is 30,000
    # The default thresholds hand the heap top back every round (what the tuning is for).
    assert _run("plain")[0] > 10_000


def test_the_users_malloc_settings_are_left_alone() -> None:
    faults, applied, reason = _run("tuned", MALLOC_TRIM_THRESHOLD_="131072")
    assert (applied, reason) == (False, "set by the environment")
    assert faults > 10_000
