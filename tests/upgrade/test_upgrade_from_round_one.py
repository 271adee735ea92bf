"""Issue 25.3: a cluster running the first release (dd78f1b, kept as source in
fixtures/) is upgraded to this code while one device is behind: it resumes where it
was, pulls only what it lacks, and rehashes and re-announces nothing it already had."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from p2psync.identity import load_identity
from p2psync.index.store import IndexStore

FIXTURE = Path(__file__).parent / "fixtures" / "p2psync-dd78f1b.tar.gz"
CURRENT = str(Path(__file__).resolve().parents[2])
SET1 = {f"kept/{i:02}.bin": os.urandom(256 * 1024) for i in range(20)}  # 5 MiB, synced by old code
SET2 = {f"new/{i}.bin": os.urandom(64 * 1024) for i in range(4)}  # 256 KiB, added while B is away


def _env(code: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": code, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}


def _cli(code: str, home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "p2psync.cli", "--home", str(home), *args],
        env=_env(code),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    def __init__(self, code: str, home: Path) -> None:
        self.code, self.home = code, home
        (home / "api.address").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2psync.cli", "--home", str(home), "run"],
            env=_env(code),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: (home / "api.address").exists() and self.status(), f"daemon {home}")

    def status(self) -> dict | None:
        done = subprocess.run(
            [sys.executable, "-m", "p2psync.cli", "--home", str(self.home), "status", "--json"],
            env=_env(self.code),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(done.stdout) if done.returncode == 0 else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(x.startswith(".p2p") for x in p.relative_to(root).parts)
    }


def _in_sync(d: Daemon, data: Path, expected: dict[str, bytes]) -> bool:
    if _tree(data) != expected:
        return False
    st = d.status()
    return bool(st) and all(f["state"] == "idle" and f["need_items"] == 0 for f in st["folders"])


def _local_records(home: Path) -> dict[str, tuple[int, tuple]]:
    device = load_identity(home).device_id.raw
    with IndexStore.open(home / "index.sqlite3", device) as store:
        return {f.name: (f.sequence, tuple(f.version)) for f in store.iter_local("shared")}


@pytest.fixture(scope="module")
def old_code(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("release")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(root, filter="data")
    return str(root / "p2psync-dd78f1b")


def test_a_cluster_upgraded_while_one_device_is_behind_resumes(tmp_path, old_code) -> None:
    homes = {n: tmp_path / n / "home" for n in "ab"}
    data = {n: tmp_path / n / "data" for n in "ab"}
    ports = {n: _free_port() for n in "ab"}
    for n in "ab":
        _cli(
            old_code,
            homes[n],
            "init",
            "--name",
            n,
            "--no-default-folder",
            "--no-mdns",
            "--listen",
            f"tcp://127.0.0.1:{ports[n]}",
            "--api",
            "127.0.0.1:0",
        )
    ids = {n: _cli(old_code, homes[n], "id").strip() for n in "ab"}
    for n, m in ("ab", "ba"):
        _cli(
            old_code,
            homes[n],
            "peer",
            "add",
            ids[m],
            "--name",
            m,
            "--address",
            f"tcp://127.0.0.1:{ports[m]}",
        )
        _cli(old_code, homes[n], "folder", "add", str(data[n]), "--id", "shared", "--share", ids[m])
    for name, content in SET1.items():
        (data["a"] / name).parent.mkdir(parents=True, exist_ok=True)
        (data["a"] / name).write_bytes(content)

    # 1. the first release syncs set 1, then B goes away
    old = {n: Daemon(old_code, homes[n]) for n in "ab"}
    try:
        _wait(lambda: _in_sync(old["b"], data["b"], SET1), "the old release syncing set 1")
    finally:
        old["b"].stop()
    # 2. A gains set 2 while B is away; A is then stopped for the upgrade
    try:
        for name, content in SET2.items():
            (data["a"] / name).parent.mkdir(parents=True, exist_ok=True)
            (data["a"] / name).write_bytes(content)
        _cli(old_code, homes["a"], "scan", "shared")
        _wait(lambda: "new/3.bin" in _local_records_live(old["a"]), "A scanning set 2")
    finally:
        old["a"].stop()
    before = {n: _local_records(homes[n]) for n in "ab"}
    inodes = {name: (data["b"] / name).stat().st_ino for name in SET1}

    # 3. both upgraded: B pulls set 2 only; nothing already known is rehashed or re-sent
    new = {n: Daemon(CURRENT, homes[n]) for n in "ab"}
    try:
        expected = {**SET1, **SET2}
        _wait(lambda: _in_sync(new["b"], data["b"], expected), "B catching up after the upgrade")
        b_status = new["b"].status()
        assert b_status is not None
        received = sum(d["bytes_in"] for d in b_status["devices"])
        assert received < 2 * 1024 * 1024, f"B received {received} bytes (set 1 is 5 MiB)"
    finally:
        for d in new.values():
            d.stop()
    assert {name: (data["b"] / name).stat().st_ino for name in SET1} == inodes
    after = {n: _local_records(homes[n]) for n in "ab"}
    for n in "ab":  # every record the old release wrote is unchanged: no version bump,
        assert {k: after[n][k] for k in before[n]} == before[n]  # no refresh, no re-pull
    assert set(after["b"]) - set(before["b"]) == {"new", *SET2}


def _local_records_live(d: Daemon) -> set[str]:
    st = d.status()
    return {"new/3.bin"} if st and st["folders"][0]["local"]["files"] >= len(SET1) + 4 else set()
