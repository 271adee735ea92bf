"""Issue 25.3: a daemon that finds a config or an index written by a newer p2psync
refuses to start with a message saying so, and changes nothing in the home."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from test_cli_daemon import ENV, P2PSYNC, init_home
from test_e2e_reconnect import start, stop

from p2psync.config import CONFIG_VERSION
from p2psync.index.sqlite_schema import MIGRATIONS


def _snapshot(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name not in ("p2psync.log", "daemon.lock")
    }


def _run_until_exit(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*P2PSYNC, "--home", str(home), "run"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_newer_config_stops_the_start_and_nothing_changes(tmp_path) -> None:
    home = tmp_path / "home"
    init_home(home)
    path = home / "config.toml"
    path.write_text(path.read_text().replace(f"version = {CONFIG_VERSION}", "version = 99"))
    before = _snapshot(home)
    done = _run_until_exit(home)
    assert done.returncode != 0
    assert "written by a newer p2psync" in done.stderr, done.stderr
    assert _snapshot(home) == before


def test_a_newer_index_stops_the_start_and_is_not_set_aside(tmp_path) -> None:
    home = tmp_path / "home"
    init_home(home)
    stop([start(home)])  # a real index, written by this version
    index = home / "index.sqlite3"
    assert index.exists()
    conn = sqlite3.connect(index)  # ... then upgraded by a newer one
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    before = _snapshot(home)
    done = _run_until_exit(home)
    assert done.returncode != 0
    assert "newer than this p2psync supports" in done.stderr, done.stderr
    assert _snapshot(home) == before
    assert not list(home.glob("*.corrupt-*"))
