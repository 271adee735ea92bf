"""Restarts: a lost index database, a node stopped mid-transfer, and a real daemon
killed with SIGKILL while it receives ~200 MiB."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import trio
from nodes import FOLDER, Cluster, make_home, tree_digest
from nodes import wait_for as _wait_for

from p2psync.config import DeviceConfig, FolderConfig, load_config, save_config
from p2psync.fs.internal import is_temp_base
from p2psync.identity import load_identity
from p2psync.wiring import INDEX_FILE, serve_node

MiB = 1024 * 1024


async def wait_for(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:  # noqa: ASYNC109
    """nodes.wait_for, where a path vanishing under a check means "not yet"."""

    def safe() -> object:
        try:
            return check()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False

    await _wait_for(safe, timeout=timeout, what=what)


def conflict_copies(root: Path) -> list[str]:
    return sorted(n for n in tree_digest(root) if ".sync-conflict-" in n)


def temp_files(root: Path) -> list[str]:
    return sorted(
        str(Path(d, f).relative_to(root))
        for d, _, fs in os.walk(root)
        for f in fs
        if is_temp_base(f)
    )


async def test_index_reset_gives_full_resend_and_no_conflicts(tmp_path: Path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        a, b = c.data("a"), c.data("b")
        (a / "dir").mkdir()
        for i in range(20):
            (a / "dir" / f"f{i}.txt").write_text(f"content {i}" * 100)
        (a / "top.bin").write_bytes(os.urandom(400_000))
        c.scan("a")
        await wait_for(lambda: len(tree_digest(b)) == 22 and c.in_sync(), what="initial sync")
        a_raw = c.nodes["a"].device_id.raw
        a_index_id = c.nodes["a"].index.local_index_id(FOLDER)

        await c.stop("b")
        for suffix in ("", "-wal", "-shm"):
            path = c.homes["b"] / (INDEX_FILE + suffix)
            path.unlink(missing_ok=True)
        assert not (c.homes["b"] / INDEX_FILE).exists()
        await c.start(nursery, "b")
        idx_b = c.nodes["b"].index
        await wait_for(lambda: c.connected("a", "b") and c.connected("b", "a"), what="reconnect")
        # a full resend: b learns every entry of a again, under a's index ID
        await wait_for(
            lambda: sum(1 for _ in idx_b.iter_device(FOLDER, a_raw)) == 22, what="full index from a"
        )
        assert idx_b.index_id(FOLDER, a_raw) == a_index_id
        c.scan("b")
        await wait_for(lambda: c.runner("b").status.state == "idle" and c.in_sync(), what="settle")
        await wait_for(lambda: c.runner("a").status.state == "idle", what="a settles")
        assert conflict_copies(a) == [] and conflict_copies(b) == [], "spurious conflict copies"
        assert len(tree_digest(a)) == 22
        # and the pair still syncs both ways
        (b / "after-reset.txt").write_text("from b")
        c.scan("b")
        await wait_for(lambda: (a / "after-reset.txt").exists(), what="b -> a after reset")
        (a / "top.bin").write_bytes(b"changed on a")
        c.scan("a")
        await wait_for(
            lambda: (b / "top.bin").read_bytes() == b"changed on a" and c.in_sync(),
            what="a -> b after reset",
        )
        assert conflict_copies(b) == []
        nursery.cancel_scope.cancel()


async def test_restart_mid_transfer_converges(tmp_path: Path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        a, b = c.data("a"), c.data("b")
        for i in range(40):
            (a / f"f{i:02}.bin").write_bytes(os.urandom(MiB))
        c.scan("a")

        def pulled() -> int:  # cheap: no hashing while the transfer runs
            return sum(1 for n in os.listdir(b) if n.endswith(".bin") and not n.startswith(".p2p"))

        await wait_for(lambda: pulled() >= 1, what="transfer under way")
        await c.stop("b")
        partial = len(tree_digest(b))
        await c.start(nursery, "b")
        await wait_for(
            lambda: len(tree_digest(b)) == 40 and c.in_sync(),
            timeout=30,
            what=f"convergence after restart (had {partial} files)",
        )
        await wait_for(lambda: not temp_files(b), what="temp files cleaned")
        assert conflict_copies(b) == []
        nursery.cancel_scope.cancel()


# ---- a real daemon, killed ---------------------------------------------------------------


def start_daemon(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "p2psync.cli", "--home", str(home), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
        )


def make_source_files(root: Path, count: int, size: int) -> dict[str, str]:
    digests = {}
    for i in range(count):
        data = os.urandom(size)
        (root / f"big{i:02}.bin").write_bytes(data)
        digests[f"big{i:02}.bin"] = hashlib.sha256(data).hexdigest()
    return digests


class Checker:
    """Every visible (non-temp) file in the receiver's folder must equal its source;
    verifies each (name, size, mtime, inode) once."""

    def __init__(self, root: Path, expected: dict[str, str]) -> None:
        self.root = root
        self.expected = expected
        self.seen: set[tuple[str, int, int, int]] = set()
        self.complete: set[str] = set()

    def check(self) -> None:
        for entry in os.scandir(self.root):
            if entry.name.startswith(".p2p") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                key = (entry.name, st.st_size, st.st_mtime_ns, st.st_ino)
                if key in self.seen:
                    continue
                with open(entry.path, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            except FileNotFoundError:
                continue
            assert digest == self.expected.get(entry.name), (
                f"{entry.name} is visible but corrupt/partial"
            )
            self.seen.add(key)
            self.complete.add(entry.name)


async def test_sigkill_of_receiving_daemon_never_exposes_partial_files(tmp_path: Path) -> None:
    home_a, home_b = make_home(tmp_path, "a"), make_home(tmp_path, "b")
    data_a, data_b = tmp_path / "a" / "data", tmp_path / "b" / "data"
    id_a, id_b = load_identity(home_a).device_id, load_identity(home_b).device_id
    expected = make_source_files(data_a, 50, 4 * MiB)  # 200 MiB
    cfg_b = load_config(home_b)
    cfg_b = cfg_b.with_device(DeviceConfig(id=id_a, name="a", addresses=("dynamic",))).with_folder(
        FolderConfig(
            id=FOLDER, path=str(data_b), devices=(id_a,), rescan_interval_s=0, watcher=False
        )
    )
    log = tmp_path / "b-daemon.log"
    proc: subprocess.Popen[bytes] | None = None
    checker = Checker(data_b, expected)
    try:
        async with trio.open_nursery() as nursery:
            node_a = await nursery.start(serve_node, home_a)
            # A sends at most ~40 MiB/s, so the transfer lasts seconds and the kill below
            # lands in the middle of it however fast this machine is.
            cfg_a = node_a.config.with_device(
                DeviceConfig(
                    id=id_b, name="b", addresses=tuple(map(str, cfg_b.listen)), max_send_kbps=40_000
                )
            )
            cfg_a = cfg_a.with_folder(
                FolderConfig(
                    id=FOLDER, path=str(data_a), devices=(id_b,), rescan_interval_s=0, watcher=False
                )
            )
            cfg_b = cfg_b.with_device(
                DeviceConfig(
                    id=id_a, name="a", addresses=tuple(node_a.connections.listen_addresses)
                )
            )
            save_config(cfg_b, home_b)
            proc = start_daemon(home_b, log)
            await node_a.apply_config(cfg_a)
            runner_a = node_a.model.folders[FOLDER]
            runner_a.request_scan(None)

            def mid_transfer() -> bool:
                checker.check()
                return 3 <= len(checker.complete) < 50 and bool(temp_files(data_b))

            await wait_for(mid_transfer, timeout=60, what="a transfer under way on b")
            proc.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(proc.wait)
            checker.check()
            before_restart = len(checker.complete)
            assert before_restart < 50

            proc = start_daemon(home_b, log)

            def converged() -> bool:
                checker.check()
                return len(checker.complete) == 50

            await wait_for(
                converged, timeout=60, what=f"convergence after SIGKILL ({before_restart}/50)"
            )
            await wait_for(lambda: not temp_files(data_b), timeout=10, what="no temp file left")
            assert tree_digest(data_b) == tree_digest(data_a)
            nursery.cancel_scope.cancel()
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
