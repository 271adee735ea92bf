"""CLI commands (click's CliRunner) against a real `p2psync run` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2psync.cli import cli
from p2psync.config import load_config
from p2psync.identity import generate_identity
from p2psync.pending import PendingDevice, PendingFolder, PendingStore

P2PSYNC = [sys.executable, "-m", "p2psync.cli"]
ENV = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cli_run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def ok(home: Path, *args: str) -> str:
    r = cli_run(home, *args)
    assert r.exit_code == 0, (args, r.output)
    return r.output


def init_home(home: Path, name: str = "alpha") -> None:
    ok(
        home,
        "init",
        "--name",
        name,
        "--no-default-folder",
        "--no-mdns",
        "--listen",
        "tcp://127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    home = base / "home"
    init_home(home)
    proc = subprocess.Popen(
        [*P2PSYNC, "--home", str(home), "run"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: (
                (home / "api.address").exists() and cli_run(home, "status", "--json").exit_code == 0
            ),
            what="the daemon's API",
        )
        yield home, base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def status(home: Path) -> dict:
    return json.loads(ok(home, "status", "--json"))


def test_status_json_and_human(daemon) -> None:
    home, _ = daemon
    s = status(home)
    assert s["system"]["home"] == str(home) and s["system"]["listen_addresses"][0].startswith(
        "tcp://127.0.0.1:"
    )
    assert isinstance(s["folders"], list) and isinstance(s["devices"], list)
    out = ok(home, "status")
    assert "This device" in out and s["system"]["device_id"] in out


def test_config_changes_apply_to_the_running_daemon(daemon) -> None:
    home, base = daemon
    other = str(generate_identity().device_id)
    assert "Added device" in ok(
        home, "peer", "add", other, "--name", "beta", "--address", "tcp://127.0.0.1:9"
    )
    assert "Updated device" in ok(home, "peer", "add", other, "--name", "beta")
    dev = next(d for d in status(home)["devices"] if d["id"] == other)
    assert dev["name"] == "beta" and dev["addresses"] == ["tcp://127.0.0.1:9", "dynamic"]
    ok(home, "peer", "pause", other)
    assert next(d for d in status(home)["devices"] if d["id"] == other)["paused"] is True
    assert load_config(home).device(generate_identity().device_id) is None
    ok(home, "peer", "resume", other)
    assert next(d for d in status(home)["devices"] if d["id"] == other)["paused"] is False
    path = base / "live"
    assert "Added folder 'live'" in ok(home, "folder", "add", str(path), "--share", other)
    f = next(f for f in status(home)["folders"] if f["id"] == "live")
    assert f["devices"][0]["id"] == other and f["type"] == "sendreceive"
    ok(home, "folder", "pause", "live")
    wait_for(
        lambda: next(f for f in status(home)["folders"] if f["id"] == "live")["state"] == "paused",
        what="paused folder",
    )
    ok(home, "folder", "resume", "live")
    assert not load_config(home).folder("live").paused
    r = cli_run(home, "folder", "override", "live")
    assert r.exit_code == 2 and "send-only" in r.output
    r = cli_run(home, "folder", "add", str(path))
    assert r.exit_code == 2 and "already shared" in r.output
    r = cli_run(home, "peer", "add", "NOT-AN-ID")
    assert r.exit_code == 2 and "Traceback" not in r.output
    ok(home, "folder", "remove", "live")
    assert all(f["id"] != "live" for f in status(home)["folders"])
    ok(home, "peer", "remove", other)
    assert all(d["id"] != other for d in status(home)["devices"])
    assert cli_run(home, "peer", "remove", other).exit_code == 2


def test_scan_conflicts_versions_ignore(daemon) -> None:
    home, base = daemon
    root = base / "work"
    (root / ".p2pversions").mkdir(parents=True)
    (root / "report.sync-conflict-20240101-101010-ABCDEFG.txt").write_text("other side")
    (root / "report.txt").write_text("now")
    (root / ".p2pversions" / "report~20240101-000000.txt").write_text("before")
    (root / ".p2pignore").write_text("# comment\n!keep.tmp\n*.tmp\n")
    ok(home, "folder", "add", str(root), "--id", "work")
    (root / "late.txt").write_text("late")
    assert "Scanning 'work'" in ok(home, "scan", "work")
    wait_for(
        lambda: (
            next(f for f in status(home)["folders"] if f["id"] == "work")["local"]["files"] >= 3
        ),
        what="scan results",
    )
    data = json.loads(ok(home, "conflicts", "--json"))
    assert [c["name"] for c in data["work"]] == ["report.sync-conflict-20240101-101010-ABCDEFG.txt"]
    assert "report.sync-conflict" in ok(home, "conflicts", "work")
    versions = json.loads(ok(home, "versions", "list", "work", "report.txt", "--json"))
    assert [v["size"] for v in versions] == [6]
    assert "Restored report.txt" in ok(home, "versions", "restore", "work", "report.txt")
    assert (root / "report.txt").read_text() == "before"
    assert cli_run(home, "versions", "restore", "work", "nothing.txt").exit_code == 2
    assert "ignored by .p2pignore:3: *.tmp" in ok(home, "ignore", "check", "work", "x/a.tmp")
    assert "not ignored by .p2pignore:2: !keep.tmp" in ok(
        home, "ignore", "check", "work", "keep.tmp"
    )
    assert "not ignored (no pattern matches)" in ok(home, "ignore", "check", "work", "a.txt")
    assert json.loads(ok(home, "ignore", "check", "work", "b.tmp", "--json"))["ignored"] is True
    assert "Scanning 'work' (late.txt)" in ok(home, "folder", "scan", "work", "late.txt")
    assert cli_run(home, "scan", "nope").exit_code == 2
    ok(home, "folder", "remove", "work")


def test_pending_accept_and_reject_through_the_daemon(daemon) -> None:
    home, base = daemon
    dev = str(generate_identity().device_id)
    store = PendingStore(home)
    store.add_device(PendingDevice(dev, "evil\x1b[31mname", "tcp://127.0.0.1:4", 1.0))
    out = ok(home, "peer", "pending")
    assert "\x1b" not in out and "\\x1b[31mname" in out
    ok(home, "peer", "add", dev, "--name", "gamma\x1b]0;pwned\x07")
    assert PendingStore(home).devices() == []
    text = ok(home, "status")
    assert "\x1b" not in text and "\x07" not in text and "gamma\\x1b]0;pwned\\x07" in text
    store.add_folder(PendingFolder("offered", "Offered", dev, 2.0))
    store.add_folder(PendingFolder("unwanted", "", dev, 3.0))
    assert "Accepted folder 'offered'" in ok(
        home, "folder", "accept", "offered", str(base / "offered")
    )
    f = next(f for f in status(home)["folders"] if f["id"] == "offered")
    assert f["devices"][0]["id"] == dev and (base / "offered").is_dir()
    ok(home, "folder", "reject", "unwanted")
    assert PendingStore(home).folders() == []
    assert cli_run(home, "folder", "reject", "unwanted").exit_code == 2
    store.add_device(
        PendingDevice(str(generate_identity().device_id), "x", "tcp://127.0.0.1:5", 1.0)
    )
    ok(home, "peer", "reject", PendingStore(home).devices()[0].device_id)
    assert PendingStore(home).devices() == []
    assert "mDNS) is off" in ok(home, "peer", "discovered")
    ok(home, "folder", "remove", "offered")
    ok(home, "peer", "remove", dev)


def test_events_and_log(daemon) -> None:
    home, _ = daemon
    events = json.loads(ok(home, "events", "--json"))
    assert events and {"id", "type", "time", "data"} <= set(events[0])
    assert "ConfigSaved" in ok(home, "events", "--types", "ConfigSaved") or events
    out = ok(home, "log", "--tail", "3").splitlines()
    assert out[0] == str(home / "p2psync.log") and 1 <= len(out) <= 4


def test_status_watch_refreshes_until_interrupted(daemon) -> None:
    home, _ = daemon
    proc = subprocess.Popen(
        [*P2PSYNC, "--home", str(home), "status", "--watch", "--json", "--interval", "0.2"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert all(json.loads(line)["system"]["home"] == str(home) for line in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_commands_without_a_daemon(tmp_path) -> None:
    home = tmp_path / "idle"
    init_home(home)
    for args in (["status"], ["events"], ["scan"], ["peer", "discovered"], ["conflicts"]):
        r = cli_run(home, *args)
        assert r.exit_code == 4 and "not running" in r.output, args
    # config edits fall back to editing the file
    other = str(generate_identity().device_id)
    ok(home, "peer", "add", other)
    ok(home, "peer", "pause", other)
    assert load_config(home).devices[0].paused
    ok(home, "folder", "add", str(tmp_path / "f"), "--id", "f")
    ok(home, "folder", "pause", "f")
    assert load_config(home).folder("f").paused
    assert "No archived versions" in ok(home, "versions", "list", "f")
    # a stale api.address (daemon killed) is treated as "not running"
    (home / "api.address").write_text("127.0.0.1:9\n")
    assert cli_run(home, "status").exit_code == 4
    ok(home, "folder", "resume", "f")
