"""`p2psync run` as a real subprocess: starts, reports readiness, stops cleanly on signals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

P2PSYNC = [sys.executable, "-m", "p2psync.cli"]


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_starts_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}
    subprocess.run(
        [
            *P2PSYNC,
            "--home",
            str(home),
            "init",
            "--no-default-folder",
            "--no-mdns",
            "--listen",
            "tcp://127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*P2PSYNC, "--home", str(home), "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        log = home / "p2psync.log"
        wait_for(lambda: log.exists() and "ready" in log.read_text(), what="daemon readiness")
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
