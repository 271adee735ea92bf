"""Issue 18.1-3 as a new user meets them, with the CLI and real `p2psync run` daemons:
a second daemon on a running home, nested and overlapping folders, the default accept
path, and removing/re-accepting a folder and recovering a lost marker without deleting
anything on the other devices."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from test_cli_cluster import start, status
from test_cli_daemon import ENV, P2PSYNC, init_home, ok, wait_for


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_second_run_on_a_running_home_refuses_and_touches_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    first = start(home)
    try:
        ok(home, "folder", "add", str(tmp_path / "data"), "--id", "data")
        wait_for(lambda: (home / "index.sqlite3-wal").exists(), what="the index's WAL file")
        before = {p.name: p.stat().st_mtime_ns for p in home.iterdir()}
        second = subprocess.run(
            [*P2PSYNC, "--home", str(home), "run"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 5, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"already running on {home} (PID {first.pid})" in lines[0]
        after = {p.name: p.stat().st_mtime_ns for p in home.iterdir()}
        assert after == before  # not even the log was opened
        assert first.poll() is None
        (tmp_path / "data" / "after.txt").write_text("still syncing\n")
        ok(home, "scan", "data")
        wait_for(
            lambda: status(home)["folders"][0]["local"]["files"] == 1, what="the first daemon"
        )
    finally:
        stop(first)
    # the lock dies with its process: the home runs again after a stop
    again = start(home)
    stop(again)
    assert again.returncode == 0
