"""watch_folder_inotify: inotify read on the trio event loop, on real directories; the
event mapping (``WatchTable``) sans IO."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import struct
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from test_watcher_real import DEADLINE, covered, wait_for
from watchdog.observers.inotify_c import InotifyConstants as C

from p2psync.errors import FilesystemError, WatchLimitError
from p2psync.watcher import inotify_loop
from p2psync.watcher.aggregate import Batch, BridgeItem
from p2psync.watcher.inotify_loop import Changes, WatchTable, parse, watch_folder_inotify

AddWatch = Callable[[int, bytes, int], int]


def write_bytes_name(path: bytes) -> None:
    with open(path, "wb") as f:
        f.write(b"x")


def real(path: Path) -> bytes:
    return os.fsencode(os.path.realpath(path))


def fd_numbers() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def inotify_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


@asynccontextmanager
async def watching(
    root: Path, max_per_dir: int = 100
) -> AsyncIterator[trio.MemoryReceiveChannel[Batch]]:
    send, receive = trio.open_memory_channel[Batch](100)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            await nursery.start(
                partial(watch_folder_inotify, root, on_changes=send, max_per_dir=max_per_dir)
            )
        yield receive
        nursery.cancel_scope.cancel()


async def wait_for_rescan(changes: trio.MemoryReceiveChannel[Batch]) -> list[list[str]]:
    """Receive batches until a full rescan (None); return the batches of names before it."""
    before: list[list[str]] = []
    with trio.fail_after(DEADLINE):
        while (batch := await changes.receive()) is not None:
            before.append(batch)
    return before


def failing_add_watch(fail_on: bytes, err: int, calls: list[bytes]) -> AddWatch:
    """The real inotify_add_watch, except for paths ending in ``fail_on``: -1 and ``err``."""
    real = inotify_loop.inotify_add_watch

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        calls.append(path)
        if path.endswith(fail_on):
            ctypes.set_errno(err)
            return -1
        return real(fd, path, mask)  # type: ignore[no-any-return]

    return add_watch


# --- real directories ---------------------------------------------------------------------


async def test_reading_files_is_not_a_change(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "r.txt").write_text("read me")
    async with watching(tmp_path) as changes:
        (tmp_path / "d" / "r.txt").read_text()  # what our scanner does
        os.listdir(tmp_path / "d")
        (tmp_path / "sentinel").write_text("s")  # its event follows the reads' in the queue
        assert await wait_for(changes, "sentinel") == [["sentinel"]]


async def test_a_tree_moved_in_from_outside_is_watched(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "tree" / "a" / "b").mkdir(parents=True)
    (outside / "tree" / "a" / "b" / "old.txt").write_text("o")
    async with watching(root) as changes:
        (outside / "tree").rename(root / "tree")
        assert await wait_for(changes, "tree") == [["tree"]]

        (root / "tree" / "a" / "b" / "new.txt").write_text("n")
        assert await wait_for(changes, "tree/a/b/new.txt") == [["tree/a/b/new.txt"]]

        # moved out again: only its old name, and nothing from where it went
        (root / "tree").rename(outside / "back")
        assert await wait_for(changes, "tree") == [["tree"]]
        (outside / "back" / "a" / "b" / "gone.txt").write_text("g")
        (root / "sentinel").write_text("s")
        assert await wait_for(changes, "sentinel") == [["sentinel"]]


async def test_a_directory_renamed_inside_keeps_being_watched_under_its_new_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    async with watching(tmp_path) as changes:
        (tmp_path / "d").rename(tmp_path / "r")
        await wait_for(changes, "d", "r")

        (tmp_path / "r" / "e" / "f.txt").write_text("f")
        assert await wait_for(changes, "r/e/f.txt") == [["r/e/f.txt"]]

        # into a subdirectory of a sibling, then a file deep inside
        (tmp_path / "s").mkdir()
        await wait_for(changes, "s")
        (tmp_path / "r").rename(tmp_path / "s" / "r2")
        await wait_for(changes, "r", "s/r2")
        (tmp_path / "s" / "r2" / "e" / "g.txt").write_text("g")
        assert await wait_for(changes, "s/r2/e/g.txt") == [["s/r2/e/g.txt"]]


async def test_symlinked_directories_inside_are_not_followed(tmp_path: Path) -> None:
    root, target = tmp_path / "root", tmp_path / "target"
    root.mkdir()
    (target / "sub").mkdir(parents=True)
    (root / "link").symlink_to(target, target_is_directory=True)
    async with watching(root) as changes:
        (target / "t.txt").write_text("t")
        (target / "sub" / "u.txt").write_text("u")
        (root / "sentinel").write_text("s")
        assert await wait_for(changes, "sentinel") == [["sentinel"]]

        # a link created later is a change of its own, but is not followed either
        (root / "link2").symlink_to(target, target_is_directory=True)
        await wait_for(changes, "link2")
        (target / "sub" / "v.txt").write_text("v")
        (root / "sentinel").write_text("s2")
        assert await wait_for(changes, "sentinel") == [["sentinel"]]


async def test_internal_files_are_not_delivered_but_ignore_file_is(tmp_path: Path) -> None:
    async with watching(tmp_path) as changes:
        (tmp_path / "sub").mkdir()
        await wait_for(changes, "sub")

        (tmp_path / ".p2psync.doc.txt.tmp").write_text("partial")
        (tmp_path / "sub" / ".p2psync.x.tmp").write_text("partial")
        (tmp_path / ".p2pversions" / "sub").mkdir(parents=True)
        (tmp_path / ".p2pversions" / "sub" / "old~1.txt").write_text("old")
        (tmp_path / ".p2psync").mkdir()
        (tmp_path / ".p2psync" / "state").write_text("x")
        (tmp_path / ".p2psync.doc.txt.tmp").rename(tmp_path / "doc.txt")  # puller finishes
        (tmp_path / "sub").rename(tmp_path / ".p2pversions" / "sub2")  # versioner archives
        (tmp_path / ".p2pignore").write_text("*.bak\n")
        (tmp_path / "sentinel").write_text("s")  # written last: its batch follows the rest

        batches = await wait_for(changes, "doc.txt", ".p2pignore", "sentinel")
        names = {n for b in batches for n in b}
        assert names == {"doc.txt", "sub", ".p2pignore", "sentinel"}

        # the archived directory is not watched any more
        (tmp_path / ".p2pversions" / "sub2" / "late.txt").write_text("l")
        (tmp_path / "sentinel").write_text("s2")
        assert await wait_for(changes, "sentinel") == [["sentinel"]]


async def test_internal_directories_are_not_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".p2pversions" / "a" / "b").mkdir(parents=True)
    (tmp_path / ".p2psync").mkdir()
    (tmp_path / "user").mkdir()
    calls: list[bytes] = []
    monkeypatch.setattr(
        inotify_loop, "inotify_add_watch", failing_add_watch(b"\0never", errno.ENOSPC, calls)
    )
    async with watching(tmp_path):
        pass
    root = real(tmp_path)
    assert sorted(calls) == [root, root + b"/user"]


async def test_deleting_the_root_requests_a_full_rescan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "folder"
    (root / "sub").mkdir(parents=True)
    async with watching(root) as changes:
        shutil.rmtree(root)
        before = await wait_for_rescan(changes)  # a batch of inner deletions may come first
    assert all(covered("sub", b) for b in before)
    assert any("was deleted or moved" in r.getMessage() for r in caplog.records)


async def test_moving_the_root_requests_a_full_rescan(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    async with watching(root) as changes:
        root.rename(tmp_path / "elsewhere")
        assert await wait_for_rescan(changes) == []


async def test_a_deleted_root_that_comes_back_is_watched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inotify_loop, "ROOT_POLL", 0.05)
    root = tmp_path / "folder"
    root.mkdir()
    async with watching(root) as changes:
        shutil.rmtree(root)
        await wait_for_rescan(changes)
        root.mkdir()  # restored (or remounted)
        assert await wait_for_rescan(changes) == []  # watched again: rescan everything
        (root / "after.txt").write_text("a")
        assert await wait_for(changes, "after.txt") == [["after.txt"]]


async def test_a_root_moved_away_is_not_followed_and_a_new_one_is_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inotify_loop, "ROOT_POLL", 0.05)
    root = tmp_path / "folder"
    root.mkdir()
    async with watching(root) as changes:
        root.rename(tmp_path / "elsewhere")
        await wait_for_rescan(changes)
        (tmp_path / "elsewhere" / "moved-away.txt").write_text("m")  # not the folder's
        root.mkdir()
        assert await wait_for_rescan(changes) == []
        (root / "new.txt").write_text("n")
        batches = await wait_for(changes, "new.txt")
    assert all("moved-away.txt" not in b for b in batches)


async def test_missing_root_is_a_filesystem_error(tmp_path: Path) -> None:
    before = fd_numbers()
    send, _receive = trio.open_memory_channel[Batch](1)
    with pytest.raises(FilesystemError) as info:
        await watch_folder_inotify(tmp_path / "nope", on_changes=send)
    assert not isinstance(info.value, WatchLimitError)
    assert "nope" in str(info.value)
    assert not fd_numbers() - before


async def test_a_file_as_root_is_a_filesystem_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("f")
    before, inotify_before = fd_numbers(), inotify_fds()
    send, _receive = trio.open_memory_channel[Batch](1)
    with pytest.raises(FilesystemError) as info:
        await watch_folder_inotify(tmp_path / "file", on_changes=send)
    assert not isinstance(info.value, WatchLimitError)
    assert not fd_numbers() - before
    assert inotify_fds() == inotify_before


@pytest.mark.parametrize(
    ("err", "setting"),
    [
        (errno.ENOSPC, "fs.inotify.max_user_watches"),
        (errno.EMFILE, "fs.inotify.max_user_instances"),
    ],
)
async def test_watch_limit_while_adding_the_first_watches(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    err: int,
    setting: str,
) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    calls: list[bytes] = []
    monkeypatch.setattr(inotify_loop, "inotify_add_watch", failing_add_watch(b"/c", err, calls))
    caplog.set_level(logging.WARNING, logger="p2psync.watcher")
    before, inotify_before = fd_numbers(), inotify_fds()
    send, _receive = trio.open_memory_channel[Batch](1)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            with pytest.raises(WatchLimitError) as info:
                await nursery.start(partial(watch_folder_inotify, tmp_path, on_changes=send))
    assert calls[-1].endswith(b"/a/b/c")  # the root, a and b were watched before it failed
    assert len(calls) == 4
    assert info.value.setting == setting
    assert not fd_numbers() - before  # the inotify fd was closed
    assert inotify_fds() == inotify_before
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert setting in warnings[0].getMessage() and "sysctl" in warnings[0].getMessage()


async def test_inotify_instance_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def inotify_init() -> int:
        ctypes.set_errno(errno.EMFILE)
        return -1

    monkeypatch.setattr(inotify_loop, "inotify_init", inotify_init)
    before = fd_numbers()
    send, _receive = trio.open_memory_channel[Batch](1)
    with pytest.raises(WatchLimitError) as info:
        await watch_folder_inotify(tmp_path, on_changes=send)
    assert info.value.setting == "fs.inotify.max_user_instances"
    assert not fd_numbers() - before
    assert sum("max_user_instances" in r.getMessage() for r in caplog.records) == 1


async def test_watch_limit_after_start_means_a_full_rescan_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "old").mkdir()
    caplog.set_level(logging.WARNING, logger="p2psync.watcher")
    async with watching(tmp_path) as changes:
        calls: list[bytes] = []
        monkeypatch.setattr(
            inotify_loop, "inotify_add_watch", failing_add_watch(b"/deep", errno.ENOSPC, calls)
        )
        (tmp_path / "new" / "deep").mkdir(parents=True)
        await wait_for_rescan(changes)
        (tmp_path / "new2" / "deep").mkdir(parents=True)
        await wait_for_rescan(changes)

        # what was watched stays watched, including the part of "new" watched before
        (tmp_path / "old" / "o.txt").write_text("o")
        (tmp_path / "new" / "n.txt").write_text("n")
        assert await wait_for(changes, "old/o.txt", "new/n.txt") == [["new/n.txt", "old/o.txt"]]
    limits = [r for r in caplog.records if "max_user_watches" in r.getMessage()]
    assert len(limits) == 1 and limits[0].levelno == logging.WARNING


async def test_undecodable_names(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    os.mkdir(base + b"/dir-\xfe")
    async with watching(tmp_path) as changes:
        write_bytes_name(base + b"/bad-\xff.txt")
        await wait_for(changes, os.fsdecode(b"bad-\xff.txt"))
        write_bytes_name(base + b"/dir-\xfe/in-\xfd")
        name = os.fsdecode(b"dir-\xfe/in-\xfd")
        assert await wait_for(changes, name) == [[name]]
        os.mkdir(base + b"/new-\xfc")
        await wait_for(changes, os.fsdecode(b"new-\xfc"))
        write_bytes_name(base + b"/new-\xfc/x")
        await wait_for(changes, os.fsdecode(b"new-\xfc/x"))


async def test_cancellation_closes_the_fd_and_no_thread_is_started(tmp_path: Path) -> None:
    await trio.to_thread.run_sync(lambda: None)  # warm trio's worker-thread cache
    threads = set(threading.enumerate())
    # fd numbers and thread identities, not counts: in a long run, worker threads of
    # earlier tests' nodes may still be exiting and closing their handles meanwhile
    fds, inotify_before = fd_numbers(), inotify_fds()
    with trio.fail_after(DEADLINE):
        async with watching(tmp_path) as changes:
            assert inotify_fds() == inotify_before + 1
            assert len(fd_numbers() - fds) == 1
            (tmp_path / "f").write_text("f")
            (tmp_path / "d").mkdir()  # walked in trio's (cached) worker thread
            await wait_for(changes, "f", "d")
            assert not set(threading.enumerate()) - threads  # no thread started
    assert inotify_fds() == inotify_before
    assert not fd_numbers() - fds  # nothing opened here is left open


async def test_queue_overflow_read_from_the_fd_is_a_full_rescan() -> None:
    read_end, write_end = os.pipe()  # stands in for the inotify fd
    try:
        os.set_blocking(read_end, False)
        send, receive = trio.open_memory_channel[BridgeItem](10)
        watcher = inotify_loop._Watcher(read_end, "/folder", send, None)
        watcher.table.add("", 1)
        os.write(write_end, raw(-1, C.IN_Q_OVERFLOW) + raw(1, C.IN_CREATE, name=b"a"))
        await watcher.handle_round()
        assert receive.receive_nowait() is None
        assert receive.receive_nowait() == ("a",)
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_a_mapping_failure_is_a_full_rescan_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: WatchTable, events: object, changes: Changes) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(WatchTable, "map", broken)
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(read_end, False)
        send, receive = trio.open_memory_channel[BridgeItem](10)
        watcher = inotify_loop._Watcher(read_end, "/folder", send, None)
        os.write(write_end, raw(1, C.IN_CREATE, name=b"a"))
        await watcher.handle_round()
        assert receive.receive_nowait() is None
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert any("could not interpret" in r.getMessage() for r in caplog.records)


# --- the event mapping, sans IO -------------------------------------------------------------


def raw(wd: int, mask: int, cookie: int = 0, name: bytes = b"") -> bytes:
    """One ``struct inotify_event`` as the kernel writes it (name NUL-padded)."""
    padded = name + b"\0" * (16 - len(name) % 16) if name else b""
    return struct.pack("iIII", wd, mask, cookie, len(padded)) + padded


def mapped(table: WatchTable, *events: bytes) -> Changes:
    changes = Changes()
    table.map(parse([b"".join(events)]), changes)
    return changes


def sample_table() -> WatchTable:
    table = WatchTable()
    for wd, name in enumerate(["", "d", "d/e", "d/e/f", "s"], start=1):
        table.add(name, wd)
    return table


def test_file_events_map_to_names_once_per_round() -> None:
    table = sample_table()
    changes = mapped(
        table,
        raw(1, C.IN_CREATE, name=b"a"),
        raw(1, C.IN_MODIFY, name=b"a"),
        raw(1, C.IN_CLOSE_WRITE, name=b"a"),
        raw(3, C.IN_ATTRIB, name=b"x"),
        raw(4, C.IN_DELETE, name=b"y"),
        raw(1, C.IN_CREATE, name=b".p2psync.a.tmp"),
        raw(1, C.IN_CREATE, name=b".p2pversions"),
        raw(1, C.IN_CREATE, name=b".p2pignore"),
        raw(1, C.IN_ATTRIB),  # the root's own attributes
        raw(99, C.IN_CREATE, name=b"unknown-watch"),
    )
    assert changes.names == {"a", "d/e/x", "d/e/f/y", ".p2pignore"}
    assert not changes.full_rescan and not changes.root_gone and changes.new_dirs == []


def test_new_directories_are_to_be_watched() -> None:
    table = sample_table()
    changes = mapped(
        table,
        raw(1, C.IN_CREATE | C.IN_ISDIR, name=b"n"),
        raw(2, C.IN_MOVED_TO | C.IN_ISDIR, cookie=7, name=b"from-outside"),
        raw(1, C.IN_CREATE | C.IN_ISDIR, name=b".p2pversions"),
        raw(1, C.IN_ATTRIB | C.IN_ISDIR, name=b"s"),
    )
    assert changes.names == {"n", "d/from-outside", "s"}
    assert changes.new_dirs == ["n", "d/from-outside"]


def test_a_directory_moved_inside_renames_its_subtree() -> None:
    table = sample_table()
    changes = mapped(
        table,
        raw(1, C.IN_MOVED_FROM | C.IN_ISDIR, cookie=5, name=b"d"),
        raw(5, C.IN_MOVED_TO | C.IN_ISDIR, cookie=5, name=b"m"),
        raw(2, C.IN_MOVE_SELF),
        raw(4, C.IN_CREATE, name=b"z"),
    )
    assert changes.names == {"d", "s/m", "s/m/e/f/z"}
    assert changes.new_dirs == [] and not changes.root_gone
    assert [table.name_of(wd) for wd in range(1, 6)] == ["", "s/m", "s/m/e", "s/m/e/f", "s"]
    assert table.take_moved_out() == []
    # the new names are known for the next move too
    mapped(
        table,
        raw(3, C.IN_MOVED_FROM | C.IN_ISDIR, cookie=6, name=b"f"),
        raw(1, C.IN_MOVED_TO | C.IN_ISDIR, cookie=6, name=b"top"),
    )
    assert [table.name_of(wd) for wd in range(1, 6)] == ["", "s/m", "s/m/e", "top", "s"]


def test_a_directory_moved_out_is_forgotten_with_its_subtree() -> None:
    table = sample_table()
    changes = mapped(table, raw(1, C.IN_MOVED_FROM | C.IN_ISDIR, cookie=9, name=b"d"))
    assert changes.names == {"d"}
    assert sorted(table.take_moved_out()) == [2, 3, 4]
    assert len(table) == 2
    assert mapped(table, raw(3, C.IN_CREATE, name=b"late")).names == set()
    # moved into p2psync's archive: the same
    table = sample_table()
    changes = mapped(
        table,
        raw(1, C.IN_MOVED_FROM | C.IN_ISDIR, cookie=3, name=b"s"),
        raw(1, C.IN_MOVED_TO | C.IN_ISDIR, cookie=3, name=b".p2pversions"),
    )
    assert changes.names == {"s"} and changes.new_dirs == []
    assert table.take_moved_out() == [5]


def test_deleted_directories_and_the_root() -> None:
    table = sample_table()
    changes = mapped(
        table,
        raw(4, C.IN_DELETE_SELF),
        raw(4, C.IN_IGNORED),
        raw(3, C.IN_DELETE | C.IN_ISDIR, name=b"f"),
    )
    assert changes.names == {"d/e/f"} and not changes.root_gone
    assert table.name_of(4) is None and len(table) == 4
    assert mapped(table, raw(1, C.IN_MOVE_SELF)).root_gone  # moved: still watched
    assert table.name_of(1) == ""
    assert mapped(table, raw(1, C.IN_DELETE_SELF), raw(1, C.IN_IGNORED)).root_gone
    assert table.name_of(1) is None


def test_queue_overflow_is_a_full_rescan() -> None:
    changes = mapped(sample_table(), raw(-1, C.IN_Q_OVERFLOW))
    assert changes.full_rescan and changes.names == set()


def test_undecodable_names_in_events() -> None:
    table = WatchTable()
    table.add("", 1)
    table.add(os.fsdecode(b"d\xfe"), 2)
    changes = mapped(table, raw(2, C.IN_CLOSE_WRITE, name=b"\xff.txt"))
    (name,) = changes.names
    assert os.fsencode(name) == b"d\xfe/\xff.txt"
