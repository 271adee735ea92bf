"""The discovery server's log: each line once, requests only at DEBUG (issue 18.10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_and_log(level: str, requests: int) -> list[str]:
    """Start the server at ``level``, make ``requests`` lookups, stop it; its stderr lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "discovery_server", "--listen", "127.0.0.1:0", "--log-level", level],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        url = line.split("listening on ", 1)[1].split()[0]
        with httpx.Client(trust_env=False, timeout=10) as client:
            for _ in range(requests):
                assert client.get(f"{url}/healthz").status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err.splitlines()


def message(line: str) -> str:
    """The part after the level and logger name (the same event in two formats)."""
    return line.split(": ", 1)[-1].split("] ", 3)[-1]


@pytest.mark.parametrize("level", ["info", "debug"])
def test_each_log_line_once_and_requests_only_at_debug(level: str) -> None:
    lines = run_and_log(level, requests=3)
    access = [line for line in lines if "GET /healthz" in line]
    messages = [message(line) for line in lines if line not in access]
    assert any("discovery server on" in m for m in messages), lines
    assert len(messages) == len(set(messages)), lines  # nothing printed twice
    if level == "info":
        assert access == [], lines
    else:
        # one per request answered
        answered = [line for line in access if '" 200 ' in line]
        assert len(answered) == 3 and all(" DEBUG " in line for line in access), lines
