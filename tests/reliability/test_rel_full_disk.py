"""Exhausted resources around a real daemon: its home and folder on one small tmpfs that
is filled to the last byte, and a file-handle limit lowered under the running process.

Expected: the daemon never exits; the folder shows why it cannot work (paused for a full
disk, error for exhausted file handles), ``p2psync status`` answers throughout, a restart
on a full disk starts and reports, and everything resumes on its own once the resource
is back. Mounting needs root: without it these tests are skipped (said in the reason).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import resource
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from faults import P2PSYNC, Daemon, fill, share_folder, temp_files, tmpfs, wait_until
from nodes import FOLDER, make_home

from p2psync.config import load_config, save_config
from p2psync.errors import IndexCorruptError, IndexError_
from p2psync.fs.internal import temp_name
from p2psync.identity import generate_identity
from p2psync.net.tls import tls_connect
from p2psync.protocol import vector
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.fileinfo import FileType, LocalFileInfo
from p2psync.protocol.messages import Close, ConnectionClosed, Hello
from p2psync.sync.pull import MIN_FREE_BYTES
from p2psync.wiring import open_index

needs_mount = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to mount a small tmpfs (mount -t tmpfs)"
)

DISK_FULL = "insufficient disk space"
LOCAL = bytes(range(32))
MiB = 1024 * 1024


class LoggedDaemon(Daemon):
    """A daemon whose stderr (its log, even when the home disk is full) goes to a file
    outside the filled disk."""

    def __init__(self, home: Path, stderr_path: Path) -> None:
        super().__init__(home)
        self.stderr_path = stderr_path

    def start(self) -> None:
        env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [*P2PSYNC, "--home", str(self.home), "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.starts += 1

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    def status(self) -> dict:
        """``p2psync status --json`` through the API; fails the test if it does not answer."""
        out = self.cli("status", "--json")
        assert out.returncode == 0, f"status failed: {out.stderr}\n{self.stderr()[-3000:]}"
        return json.loads(out.stdout)

    def folder(self) -> dict:
        return next(f for f in self.status()["folders"] if f["id"] == FOLDER)


@contextlib.contextmanager
def node_on_small_disk(tmp_path: Path, size: str = "8m") -> Iterator[tuple[LoggedDaemon, Path]]:
    """A daemon whose home and shared folder are on one fresh tmpfs of ``size``."""
    disk = tmp_path / "disk"
    with tmpfs(disk, size):
        home = make_home(disk, "a")
        data = disk / "a" / "data"
        (data / "work.txt").write_text("the user's work")
        peer_home = make_home(tmp_path, "b")  # never runs: the folder needs a device
        share_folder(home, data, {peer_home: ("tcp://127.0.0.1:1",)})
        daemon = LoggedDaemon(home, tmp_path / "daemon.stderr")
        daemon.start()
        try:
            wait_until(lambda: daemon_answers(daemon), 30, "the daemon answers status")
            yield daemon, data
            assert daemon.alive(), f"the daemon exited:\n{daemon.stderr()[-4000:]}"
        finally:
            daemon.stop()


def running(daemon: LoggedDaemon) -> bool:
    assert daemon.alive(), f"the daemon exited:\n{daemon.stderr()[-4000:]}"
    return True


def daemon_answers(daemon: LoggedDaemon) -> bool:
    return running(daemon) and daemon.cli("status", "--json").returncode == 0


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to_zero(path: Path) -> None:
    fill(path, 0)
    write_until_full(path / "filler-rest.bin")


def write_until_full(path: Path) -> None:
    """Append to ``path`` until its file system has no byte left."""
    with contextlib.suppress(OSError), open(path, "ab") as f:
        while True:
            f.write(b"\1" * 4096)
            f.flush()
    assert free_bytes(path.parent) == 0


def unfill(path: Path) -> None:
    for name in ("filler.bin", "filler-rest.bin"):
        (path / name).unlink(missing_ok=True)


def release_wal(home: Path) -> None:
    """Checkpoint the stopped daemon's WAL; closing the last connection removes the -wal
    and -shm files, which the next open must then create (and find room for)."""
    with contextlib.closing(sqlite3.connect(home / "index.sqlite3")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not (home / "index.sqlite3-shm").exists()


def index_has(home: Path, name: str) -> bool:
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{home / 'index.sqlite3'}?mode=ro", uri=True)
        ) as db:
            row = db.execute("SELECT count(*) FROM files WHERE name = ?", (name.encode(),))
            return row.fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False


async def stranger_says_hello(home: Path) -> list[object]:
    """An unknown device connects (TLS, Hello); returns what the node sent until it closed."""
    endpoint = load_config(home).listen[0].endpoint
    tcp = await trio.open_tcp_stream(endpoint.host, endpoint.port)
    stream = await tls_connect(tcp, generate_identity())
    conn = Connection(
        Hello(device_name="stranger", client_name="p2psync", client_version="0", timestamp=0)
    )
    events: list[object] = []
    with trio.fail_after(20):
        await stream.send_all(conn.start())
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    data = b""
                conn.receive_data(data)
                continue
            events.append(ev)
            if isinstance(ev, ConnectionClosed | Close):
                break
    await trio.aclose_forcefully(stream)
    return events


@needs_mount
async def test_stranger_hello_on_a_full_home_disk(tmp_path, outcomes) -> None:
    with node_on_small_disk(tmp_path) as (daemon, data):
        fill_to_zero(data)
        for _ in range(3):
            events = await stranger_says_hello(daemon.home)
            assert any(isinstance(e, Hello) for e in events), events
            assert any(isinstance(e, Close | ConnectionClosed) for e in events), events
        assert daemon.alive(), f"the daemon exited:\n{daemon.stderr()[-4000:]}"
        assert daemon.status()["system"]
        log = daemon.stderr()
        assert log.count("cannot record pending devices/folders") == 1, log[-3000:]
        assert not list(daemon.home.glob(".pending.json.*.tmp")), "a partial temp file is left"
        unfill(data)
        await stranger_says_hello(daemon.home)
        pending = daemon.cli("peer", "pending", "--json")
        assert pending.returncode == 0 and "stranger" in pending.stdout, pending
    outcomes.record(
        "disk",
        "a stranger's Hello while the home disk is full (pending.json cannot be written)",
        "connection closed normally, failure logged once, daemon kept serving",
    )


@needs_mount
async def test_full_disk_during_a_scan_pauses_then_resumes(tmp_path, outcomes) -> None:
    with node_on_small_disk(tmp_path) as (daemon, data):
        wait_until(lambda: daemon.folder()["state"] == "idle", 30, "first scan")
        fill_to_zero(data)
        for i in range(40):  # enough new entries that the index must grow
            (data / f"new-dir-{i}").mkdir()
        os.chmod(data / "work.txt", 0o600)
        daemon.cli("scan", FOLDER)
        folder = wait_until(
            lambda: (f := daemon.folder())["state"] == "paused" and f, 30, "folder paused"
        )
        assert DISK_FULL in folder["reason"], folder
        assert daemon.alive()
        unfill(data)  # no command: the folder must notice the space by itself
        wait_until(lambda: daemon.folder()["state"] == "idle", 60, "folder idle again")
        assert index_has(daemon.home, "new-dir-39"), "the scan did not finish after space returned"
    outcomes.record(
        "disk",
        "home and folder disk full during a local scan (index: database or disk is full)",
        "folder paused with the reason, status answered, resumed by itself when space returned",
    )


@needs_mount
async def test_restart_on_a_full_disk_starts_and_reports(tmp_path, outcomes) -> None:
    with node_on_small_disk(tmp_path) as (daemon, data):
        wait_until(lambda: daemon.folder()["state"] == "idle", 30, "first scan")
        daemon.stop()
        fill_to_zero(data)
        daemon.start()
        wait_until(lambda: daemon_answers(daemon), 30, "the restarted daemon answers status")
        (data / "while-full").mkdir()
        daemon.cli("scan", FOLDER)
        folder = wait_until(
            lambda: (f := daemon.folder())["state"] == "paused" and f, 30, "folder paused"
        )
        assert DISK_FULL in folder["reason"], folder
        unfill(data)
        wait_until(lambda: daemon.folder()["state"] == "idle", 60, "folder idle again")
        assert index_has(daemon.home, "while-full")
    outcomes.record(
        "disk",
        "daemon restarted on a full home disk (api.address, index, log cannot be written)",
        "started, answered status, folder paused then resumed by itself",
    )


def lowest_free_fd(pid: int) -> int:
    used = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


async def test_file_handles_exhausted_during_a_local_edit(tmp_path, outcomes) -> None:
    """No new file handle at all for the daemon (its soft RLIMIT_NOFILE lowered under the
    lowest free descriptor), then a local edit its watcher sees: the scan cannot open
    the file or the index; the folder must show it and go on once handles are back."""
    home = make_home(tmp_path, "a")
    data = tmp_path / "a" / "data"
    (data / "work.txt").write_text("the user's work")
    share_folder(home, data, {make_home(tmp_path, "b"): ("tcp://127.0.0.1:1",)})
    cfg = load_config(home)
    fc = cfg.folder(FOLDER)
    assert fc is not None
    save_config(cfg.with_folder(replace(fc, watcher=True, watcher_delay_ms=50)), home)
    daemon = LoggedDaemon(home, tmp_path / "daemon.stderr")
    daemon.start()
    try:
        wait_until(lambda: daemon_answers(daemon), 30, "the daemon answers status")
        wait_until(lambda: daemon.folder()["state"] == "idle", 30, "first scan")
        assert daemon.proc is not None
        pid = daemon.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), hard))
        try:
            (data / "edited.txt").write_text("a local edit while no handle is free")
            wait_until(
                lambda: running(daemon) and "too many open files" in daemon.stderr().lower(),
                30,
                "the daemon reports the exhausted file handles",
            )
            save_config(replace(load_config(home), name="renamed"), home)  # read by the daemon
            wait_until(
                lambda: running(daemon) and "cannot read the edited config" in daemon.stderr(),
                30,
                "the daemon reports the config it could not read",
            )
            assert daemon.alive(), f"the daemon exited:\n{daemon.stderr()[-4000:]}"
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        wait_until(lambda: daemon_answers(daemon), 30, "status answers again")
        wait_until(lambda: index_has(home, "edited.txt"), 60, "the edit indexed after all")
        wait_until(lambda: daemon.folder()["state"] == "idle", 30, "folder idle again")
        wait_until(lambda: daemon.status()["system"]["name"] == "renamed", 30, "config applied")
        assert daemon.alive()
    finally:
        daemon.stop()
    outcomes.record(
        "disk",
        "file handles exhausted (RLIMIT_NOFILE lowered under the daemon) during a local edit",
        "folder in error with the reason, daemon kept running, edit synced once handles were back",
    )


class FreeSpaceMonitor:
    """Samples the free bytes of a file system every few milliseconds (a measurement,
    not a synchronisation): the lowest value seen is what the test checks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lowest = free_bytes(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.lowest = min(self.lowest, free_bytes(self.path))

    def __enter__(self) -> FreeSpaceMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@needs_mount
async def test_files_that_fit_alone_but_not_together_keep_the_reserve(tmp_path, outcomes) -> None:
    """Home and folder on one disk; a peer offers six 10 MiB files with 40 MiB free: each
    fits next to the 16 MiB reserve, together they do not. The disk must never be driven
    to 0 bytes free (partial temp files included), and all six arrive once space is freed."""
    a_home = make_home(tmp_path, "a")
    a_data = tmp_path / "a" / "data"
    rng = random.Random(7)
    expected = {}
    for i in range(6):
        blob = rng.randbytes(10 * MiB)
        (a_data / f"big{i}.bin").write_bytes(blob)
        expected[f"big{i}.bin"] = hashlib.sha256(blob).hexdigest()
    with tmpfs(tmp_path / "b", "96m"):  # room for all six once the filler is gone
        b_home = make_home(tmp_path, "b")
        b_data = tmp_path / "b" / "data"
        share_folder(a_home, a_data, {b_home: load_config(b_home).listen})
        share_folder(b_home, b_data, {a_home: load_config(a_home).listen})
        fill(b_data, 40 * MiB)
        a = LoggedDaemon(a_home, tmp_path / "a.stderr")
        b = LoggedDaemon(b_home, tmp_path / "b.stderr")
        with FreeSpaceMonitor(b_data) as monitor:
            a.start()
            b.start()
            try:
                wait_until(lambda: daemon_answers(b), 30, "b answers status")
                folder = wait_until(
                    lambda: (f := b.folder())["state"] == "paused" and f, 60, "b paused"
                )
                assert DISK_FULL in folder["reason"], folder
                lowest = monitor.lowest
                assert lowest >= MIN_FREE_BYTES // 2, (
                    f"the disk was driven down to {lowest} bytes free"
                )
                assert b.alive() and a.alive()
                (b_data / "filler.bin").unlink()
                wait_until(
                    lambda: all(
                        (b_data / n).exists()
                        and hashlib.sha256((b_data / n).read_bytes()).hexdigest() == h
                        for n, h in expected.items()
                    ),
                    90,
                    "all six files on b once space was freed",
                )
                wait_until(lambda: b.folder()["state"] == "idle", 30, "b idle")
                assert not temp_files(b_data)
            finally:
                a.stop()
                b.stop()
    outcomes.record(
        "disk",
        "files that fit one by one but not together (home and folder on one disk)",
        f"lowest free {lowest // MiB} MiB (reserve 16 MiB), paused, all synced after freeing",
    )


@needs_mount
async def test_partial_temp_files_holding_the_last_bytes_are_dropped(tmp_path, outcomes) -> None:
    """The end of the chain in issue 17: partial temp files kept for resuming hold the
    last free bytes, and the daemon restarts. It must start, answer status, drop the
    partial files (they count against the reserve) and come back to work by itself."""
    with node_on_small_disk(tmp_path) as (daemon, data):
        wait_until(lambda: daemon.folder()["state"] == "idle", 30, "first scan")
        daemon.stop()
        release_wal(daemon.home)  # so that opening the index needs new space too
        partial = data / temp_name("big.bin")
        write_until_full(partial)
        (data / "while-full").mkdir()
        daemon.start()
        wait_until(lambda: daemon_answers(daemon), 30, "the restarted daemon answers status")
        wait_until(lambda: not partial.exists(), 30, "the partial temp file dropped")
        wait_until(lambda: daemon.folder()["state"] == "idle", 60, "folder idle by itself")
        assert index_has(daemon.home, "while-full")
        assert (data / "work.txt").read_text() == "the user's work"
        assert not list(daemon.home.glob("index.sqlite3.corrupt-*")), "the index was set aside"
    outcomes.record(
        "disk",
        "restart with partial temp files holding the last free bytes",
        "started and answered status, partial files dropped, folder idle by itself",
    )


@needs_mount
async def test_index_from_a_peer_on_a_full_home_disk_closes_only_that_connection(
    tmp_path, outcomes
) -> None:
    """A trusted peer sends index updates while our home disk is full: storing them fails
    ("database or disk is full"). That connection closes; the daemon keeps serving, and
    once space is back the peer reconnects, resends and the files arrive."""
    a_home = make_home(tmp_path, "a")
    a_data = tmp_path / "a" / "data"
    with tmpfs(tmp_path / "b", "32m"):
        b_home = make_home(tmp_path, "b")
        b_data = tmp_path / "b" / "data"
        share_folder(a_home, a_data, {b_home: load_config(b_home).listen})
        share_folder(b_home, b_data, {a_home: load_config(a_home).listen})
        a = LoggedDaemon(a_home, tmp_path / "a.stderr")
        b = LoggedDaemon(b_home, tmp_path / "b.stderr")
        a.start()
        b.start()
        try:
            wait_until(lambda: daemon_answers(a) and daemon_answers(b), 30, "both answer")
            wait_until(lambda: any(d["connected"] for d in b.status()["devices"]), 30, "connected")
            fill_to_zero(b_data)
            for i in range(300):
                (a_data / f"note-{i:03}.txt").write_text(f"note {i} " * 40)
            a.cli("scan", FOLDER)
            wait_until(
                lambda: running(b) and "failed (insufficient disk space); closing" in b.stderr(),
                30,
                "b closes the connection over the index it cannot store",
            )
            assert daemon_answers(b)
            unfill(b_data)
            wait_until(
                lambda: running(b) and (b_data / "note-299.txt").exists(),
                90,
                "the files reach b once space is back",
            )
            assert a.alive() and b.alive()
        finally:
            a.stop()
            b.stop()
    outcomes.record(
        "disk",
        "a trusted peer's index updates while the home disk is full",
        "that connection closed with the reason, daemon kept serving, synced after freeing",
    )


@needs_mount
def test_a_full_disk_never_sets_the_index_aside(tmp_path, outcomes) -> None:
    """Opening the index on a disk with no room for its -wal/-shm files fails with
    "disk I/O error"; that is a full disk, not damage: the index must not be moved aside
    (and rebuilt) but reported, and open normally once there is room."""
    with tmpfs(tmp_path / "disk", "4m"):
        home = tmp_path / "disk"
        store = open_index(home, LOCAL)
        store.update_local(
            FOLDER,
            [LocalFileInfo(name="kept", type=FileType.DIRECTORY, version=vector.make([(1, 1)]))],
        )
        store.close()
        release_wal(home)
        write_until_full(home / "filler.bin")
        with pytest.raises(IndexError_, match="disk is full") as failed:
            open_index(home, LOCAL)
        assert not isinstance(failed.value, IndexCorruptError)
        assert not list(home.glob("index.sqlite3.corrupt-*")), "the index was set aside"
        (home / "filler.bin").unlink()
        store = open_index(home, LOCAL)
        try:
            assert store.get_local(FOLDER, "kept") is not None
        finally:
            store.close()
    outcomes.record(
        "disk",
        "index opened on a disk with no room for its -wal/-shm files",
        "reported as a full disk, index kept (not set aside), opened once room returned",
    )


@needs_mount
async def test_index_full_while_recording_a_pull(tmp_path, outcomes) -> None:
    """b's index (its home) is on a small disk with room for its config but not for the
    records of a pull; its folder is on another disk. The pull's records cannot be
    stored: the folder pauses with the reason, nothing is lost or doubled, and the pull
    completes by itself once the home has room again."""
    a_home = make_home(tmp_path, "a")
    a_data = tmp_path / "a" / "data"
    expected = {}
    for i in range(300):
        body = f"file {i} ".encode() * 100
        (a_data / f"f{i:03}.txt").write_bytes(body)
        expected[f"f{i:03}.txt"] = hashlib.sha256(body).hexdigest()
    with tmpfs(tmp_path / "b" / "home", "8m"):
        b_home = make_home(tmp_path, "b")
        b_data = tmp_path / "b" / "data"
        share_folder(a_home, a_data, {b_home: load_config(b_home).listen})
        share_folder(b_home, b_data, {a_home: load_config(a_home).listen}, paused=True)
        a = LoggedDaemon(a_home, tmp_path / "a.stderr")
        b = LoggedDaemon(b_home, tmp_path / "b.stderr")
        a.start()
        b.start()
        try:
            wait_until(lambda: daemon_answers(a) and daemon_answers(b), 30, "both answer")
            wait_until(lambda: b.folder()["need_items"] == 300, 30, "b knows what it needs")
            fill(b_home, 48 * 1024)  # room for a config save, not for 300 records
            resumed = b.cli("folder", "resume", FOLDER)
            assert resumed.returncode == 0, resumed.stderr
            folder = wait_until(
                lambda: (f := b.folder())["state"] == "paused" and not f["paused"] and f,
                60,
                "b paused for its full home disk",
            )
            assert DISK_FULL in folder["reason"], folder
            assert running(b)
            (b_home / "filler.bin").unlink()
            wait_until(
                lambda: running(b) and b.folder()["state"] == "idle" and b.folder()["in_sync"],
                60,
                "b completes the pull by itself",
            )
            on_disk = {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in b_data.iterdir()
                if p.is_file()
            }
            assert on_disk == expected  # no conflict copy, no temp file, nothing missing
        finally:
            a.stop()
            b.stop()
    outcomes.record(
        "disk",
        "index (home) full while recording a pull, folder on another disk",
        "paused with the reason, nothing lost or doubled, completed by itself after freeing",
    )
