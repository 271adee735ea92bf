"""Disk faults: a receiving disk that fills up, a read-only remount, files that vanish or
become unreadable on the serving side, a directory the receiver may not write to.

Expected: the folder reports why (paused for a full disk, item errors otherwise), no
partial file is ever visible under a user name, no local file is lost, and sync
completes once the cause is gone."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
from pathlib import Path

import pytest
import trio
from faults import (
    Daemon,
    fill,
    mixed_files,
    remount,
    sha,
    share_folder,
    temp_files,
    tmpfs,
    user_files,
)
from nodes import FOLDER, Cluster, make_home, wait_for
from topo import NO_DIAL, link, start_unlinked

from p2psync.config import load_config
from p2psync.identity import load_identity
from p2psync.sync.pull import DISK_FULL

MiB = 1024 * 1024


def make_files(root: Path, seed: int, sizes: list[int], prefix: str = "big") -> dict[str, str]:
    rng = random.Random(seed)
    out = {}
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        (root / f"{prefix}{i}.bin").write_bytes(data)
        out[f"{prefix}{i}.bin"] = sha(data)
    return out


@pytest.mark.parametrize(
    ("tmpfs_size", "leave_free", "sizes", "how"),
    [
        ("48m", 12 * MiB, [3 * MiB] * 4, "free-space check"),
        # Parallel files each fit alone, not together; the free-space claims keep the
        # 16 MiB reserve (once the filler is gone all fit next to it: 96m, not 64m).
        ("96m", 30 * MiB, [10 * MiB] * 6, "parallel files against the reserve"),
        # files of BYPASS_CACHE_MIN and more are written with O_DIRECT (tmpfs allows it)
        ("128m", 60 * MiB, [20 * MiB] * 5, "parallel files written around the page cache"),
    ],
    ids=["precheck", "enospc", "enospc-direct"],
)
async def test_full_disk_pauses_then_resumes(
    tmp_path, outcomes, tmpfs_size, leave_free, sizes, how
) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    with tmpfs(c.data("b"), tmpfs_size):
        (c.data("b") / "mine.txt").write_text("b's own work")
        fill(c.data("b"), leave_free)
        filler_digest = sha((c.data("b") / "filler.bin").read_bytes())
        expected = make_files(c.data("a"), 1, sizes)
        async with trio.open_nursery() as nursery:
            await start_unlinked(c, nursery)
            await link(c)
            c.scan("a")
            c.scan("b")
            b = c.runner("b")
            await wait_for(
                lambda: b.status.state == "paused", timeout=30, what="folder paused on a full disk"
            )
            assert DISK_FULL in b.status.reason
            assert DISK_FULL in b.status.item_errors.values()
            allowed = {n: {h} for n, h in expected.items()} | {
                "mine.txt": {sha(b"b's own work")},
                "filler.bin": {filler_digest},
            }
            assert not mixed_files(c.data("b"), allowed), "a partial or foreign file is visible"
            assert (c.data("b") / "mine.txt").read_text() == "b's own work"

            (c.data("b") / "filler.bin").unlink()
            b.request_pull()
            await wait_for(
                lambda: all(user_files(c.data("b")).get(n) == h for n, h in expected.items()),
                timeout=60,
                what="sync after space was freed",
            )
            await wait_for(lambda: b.status.state == "idle", what="folder idle again")
            assert (c.data("b") / "mine.txt").read_text() == "b's own work"
            await wait_for(lambda: (c.data("a") / "mine.txt").exists(), what="b's file reaches a")
            assert not temp_files(c.data("b"))
            nursery.cancel_scope.cancel()
    outcomes.record(
        "disk", f"receiving disk full ({how})", "paused, resumed after space freed, nothing lost"
    )


async def test_read_only_remount_then_writable(tmp_path, outcomes) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    with tmpfs(c.data("b"), "32m"):
        async with trio.open_nursery() as nursery:
            await start_unlinked(c, nursery)
            await link(c)
            (c.data("a") / "one.txt").write_text("v1")
            c.scan("a")
            await wait_for(lambda: (c.data("b") / "one.txt").exists(), what="initial sync")
            remount(c.data("b"), read_only=True)
            try:
                (c.data("a") / "one.txt").write_text("v2 longer")
                (c.data("a") / "two.txt").write_text("new")
                c.scan("a")
                b = c.runner("b")
                await wait_for(
                    lambda: len(b.status.item_errors) == 2, what="items fail on a read-only disk"
                )
                assert all("read-only" in r for r in b.status.item_errors.values()), (
                    b.status.item_errors
                )
                assert b.status.state == "error"
                assert (c.data("b") / "one.txt").read_text() == "v1"
            finally:
                remount(c.data("b"), read_only=False)
            b.request_pull()
            await wait_for(
                lambda: c.in_sync() and (c.data("b") / "two.txt").exists(), what="sync after rw"
            )
            await wait_for(lambda: b.status.state == "idle", what="idle")
            nursery.cancel_scope.cancel()
    outcomes.record(
        "disk", "receiving disk remounted read-only", "item errors, converged after rw remount"
    )


async def test_file_vanishes_on_the_serving_side(tmp_path, outcomes) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await start_unlinked(c, nursery)
        await link(c, {("a", "b"): NO_DIAL, ("b", "a"): NO_DIAL})  # folders exist, nobody dials yet
        expected = make_files(c.data("a"), 2, [600_000, 300_000], prefix="f")
        c.scan("a")
        await wait_for(lambda: c.runner("a").local_sequence.value > 0, what="scan")
        (c.data("a") / "f0.bin").unlink()  # gone after the scan, before anyone asked for it
        await link(c)
        b = c.runner("b")
        await wait_for(lambda: "f0.bin" in b.status.item_errors, what="b reports the missing file")
        await wait_for(
            lambda: user_files(c.data("b")).get("f1.bin") == expected["f1.bin"], what="other file"
        )
        assert not (c.data("b") / "f0.bin").exists()
        c.scan("a")  # a notices the deletion; b stops wanting the file
        await wait_for(
            lambda: c.in_sync() and not (c.data("a") / "f0.bin").exists(),
            what="converged after rescan",
        )
        nursery.cancel_scope.cancel()
    outcomes.record(
        "disk",
        "file vanishes on the serving side before it is served",
        "item error, converged after rescan",
    )


def local_has(home: Path, name: str) -> bool:
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{home / 'index.sqlite3'}?mode=ro", uri=True)
        ) as db:
            return (
                db.execute(
                    "SELECT count(*) FROM files WHERE name = ?", (name.encode(),)
                ).fetchone()[0]
                > 0
            )
    except sqlite3.OperationalError:  # not created yet
        return False


async def test_file_unreadable_on_the_serving_side(tmp_path, outcomes) -> None:
    """The sender is a real daemon without DAC override, so chmod 000 bites even as root."""
    a_home, b_home = make_home(tmp_path, "a"), make_home(tmp_path, "b")
    a_data, b_data = tmp_path / "a" / "data", tmp_path / "b" / "data"
    expected = make_files(a_data, 3, [500_000, 200_000], prefix="s")
    share_folder(a_home, a_data, {b_home: NO_DIAL})
    daemon = Daemon(a_home, drop_dac=True)
    daemon.start()
    try:
        await wait_for(daemon.ready, timeout=30, what="daemon ready")
        # Ask for a scan the way a user would, so it has surely happened before the chmod.
        scanned = await trio.to_thread.run_sync(daemon.cli, "scan", FOLDER)
        assert scanned.returncode == 0, scanned.stderr
        await wait_for(
            lambda: local_has(a_home, "s0.bin") and local_has(a_home, "s1.bin"),
            timeout=30,
            what="the daemon scanned its folder",
        )
        os.chmod(a_data / "s0.bin", 0)
        a_listen = load_config(a_home).listen
        share_folder(b_home, b_data, {a_home: a_listen})
        c = Cluster.__new__(Cluster)  # only used to run b in-process
        c.__init__(tmp_path / "x", [])  # type: ignore[misc]
        c.homes = {"b": b_home}
        async with trio.open_nursery() as nursery:
            await c.start(nursery, "b")
            b = c.nodes["b"].model.folders[FOLDER]
            await wait_for(
                lambda: "s0.bin" in b.status.item_errors,
                timeout=30,
                what="b reports the unreadable file",
            )
            await wait_for(
                lambda: user_files(b_data).get("s1.bin") == expected["s1.bin"], what="readable file"
            )
            assert daemon.alive(), "the serving daemon crashed"
            assert not (b_data / "s0.bin").exists()
            os.chmod(a_data / "s0.bin", 0o644)
            b.request_pull()
            await wait_for(
                lambda: user_files(b_data) == expected, timeout=30, what="sync after chmod back"
            )
            assert not temp_files(b_data)
            nursery.cancel_scope.cancel()
    finally:
        daemon.stop()
    outcomes.record(
        "disk",
        "file made unreadable (chmod 000) on the serving side",
        "item error, converged after chmod back",
    )


async def test_permission_denied_directory_on_the_receiver(tmp_path, outcomes) -> None:
    """The receiver is a real daemon without DAC override; one of its directories is 0555."""
    c = Cluster(tmp_path, ["a"])
    b_home = make_home(tmp_path, "b")
    b_data = tmp_path / "b" / "data"
    (b_data / "locked").mkdir()
    (b_data / "locked" / "old.txt").write_text("b's file in the locked dir")
    os.chmod(b_data / "locked", 0o555)
    async with trio.open_nursery() as nursery:
        await start_unlinked(c, nursery)
        a_id = str(load_identity(c.homes["a"]).device_id)
        # ignore_permissions: b must not "fix" its 0555 directory from a's 0755
        share_folder(
            b_home,
            b_data,
            {c.homes["a"]: tuple(c.nodes["a"].connections.listen_addresses)},
            ignore_permissions=True,
        )
        cfg = c.nodes["a"].config
        from p2psync.config import DeviceConfig, FolderConfig, save_config

        b_id = load_identity(b_home).device_id
        cfg = cfg.with_device(DeviceConfig(id=b_id, name="b", addresses=NO_DIAL)).with_folder(
            FolderConfig(
                id=FOLDER,
                path=str(c.data("a")),
                devices=(b_id,),
                rescan_interval_s=0,
                watcher=False,
            )
        )
        save_config(cfg, c.homes["a"])
        await c.nodes["a"].apply_config(cfg)
        assert a_id
        (c.data("a") / "locked").mkdir(mode=0o555)
        (c.data("a") / "free.txt").write_text("lands anywhere")
        daemon = Daemon(b_home, drop_dac=True)
        daemon.start()
        try:
            await wait_for(
                lambda: (c.data("a") / "locked" / "old.txt").exists(),
                timeout=30,
                what="b's file reaches a",
            )
            os.chmod(c.data("a") / "locked", 0o755)
            (c.data("a") / "locked" / "new.txt").write_text("cannot land in b's 0555 dir")
            c.scan("a")
            await wait_for(
                lambda: (b_data / "free.txt").exists(), timeout=30, what="free file reaches b"
            )
            await wait_for(
                lambda: "permission denied" in daemon.log_since_start(),
                timeout=30,
                what="b logs the refused write",
            )
            assert daemon.alive(), "the receiving daemon crashed"
            assert (b_data / "locked" / "old.txt").read_text() == "b's file in the locked dir"
            assert not (b_data / "locked" / "new.txt").exists()
            os.chmod(b_data / "locked", 0o755)
            (c.data("a") / "nudge.txt").write_text("a new index entry makes b pull again")
            c.scan("a")
            await wait_for(
                lambda: (b_data / "locked" / "new.txt").exists(),
                timeout=30,
                what="sync once the directory is writable",
            )
            assert not temp_files(b_data)
        finally:
            daemon.stop()
        nursery.cancel_scope.cancel()
    outcomes.record(
        "disk", "permission-denied directory on the receiver", "item error, converged after chmod"
    )
