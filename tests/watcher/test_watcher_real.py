"""The in-process watchers on a real directory: watchdog's observer threads
(``watcher.in_process.watch_folder``) and, for the behaviour every watcher shares, the event-loop
inotify watcher (``watcher.inotify_loop.watch_folder_inotify``; its own cases are in
test_watch_inotify.py)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import NoReturn

import pytest
import trio
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.utils import BaseThread

from p2psync.errors import FilesystemError, WatchLimitError
from p2psync.watcher.aggregate import Batch
from p2psync.watcher.in_process import watch_folder
from p2psync.watcher.inotify_loop import watch_folder_inotify

DEADLINE = 5.0


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, BaseThread) and t.is_alive()]


WatchFolder = Callable[..., Awaitable[NoReturn]]


@pytest.fixture(params=[watch_folder, watch_folder_inotify], ids=["threads", "inotify"])
def impl(request: pytest.FixtureRequest) -> WatchFolder:
    """Each watcher implementation, for the tests of what they all do."""
    return request.param  # type: ignore[no-any-return]


@asynccontextmanager
async def watching(
    root: Path, max_per_dir: int = 100, impl: WatchFolder = watch_folder
) -> AsyncIterator[trio.MemoryReceiveChannel[Batch]]:
    send, receive = trio.open_memory_channel[Batch](100)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            await nursery.start(partial(impl, root, on_changes=send, max_per_dir=max_per_dir))
        yield receive
        nursery.cancel_scope.cancel()


def covered(name: str, batch: list[str]) -> bool:
    return any(name == b or name.startswith(b + "/") for b in batch)


async def wait_for(changes: trio.MemoryReceiveChannel[Batch], *names: str) -> list[list[str]]:
    """Receive batches until every name is covered; return all batches seen."""
    seen: list[list[str]] = []
    missing = set(names)
    with trio.fail_after(DEADLINE):
        while missing:
            batch = await changes.receive()
            assert batch is not None, "unexpected full-rescan signal"
            seen.append(batch)
            missing = {n for n in missing if not covered(n, batch)}
    return seen


async def test_create_modify_delete_rename_and_nested_dir(
    tmp_path: Path, impl: WatchFolder
) -> None:
    async with watching(tmp_path, impl=impl) as changes:
        (tmp_path / "a.txt").write_text("one")
        await wait_for(changes, "a.txt")

        with (tmp_path / "a.txt").open("a") as f:
            f.write("two")
        await wait_for(changes, "a.txt")

        (tmp_path / "a.txt").rename(tmp_path / "b.txt")
        batches = await wait_for(changes, "a.txt", "b.txt")
        assert all("a.txt" not in b or "b.txt" in b for b in batches)

        (tmp_path / "b.txt").unlink()
        await wait_for(changes, "b.txt")

        (tmp_path / "x" / "y").mkdir(parents=True)
        batches = await wait_for(changes, "x")
        assert ["x"] in batches  # the new directory (x/y lies under it)

        # the new subdirectory is watched too
        (tmp_path / "x" / "y" / "deep.txt").write_text("d")
        assert await wait_for(changes, "x/y/deep.txt") == [["x/y/deep.txt"]]

        os.chmod(tmp_path / "x" / "y" / "deep.txt", 0o600)
        assert await wait_for(changes, "x/y/deep.txt") == [["x/y/deep.txt"]]

        (tmp_path / "x" / "y" / "deep.txt").unlink()
        (tmp_path / "x" / "y").rmdir()
        await wait_for(changes, "x/y")
        (tmp_path / "x").rename(tmp_path / "z")
        await wait_for(changes, "x", "z")


async def test_root_given_through_a_symlink(tmp_path: Path, impl: WatchFolder) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    async with watching(tmp_path / "link", impl=impl) as changes:
        (tmp_path / "link" / "via-link.txt").write_text("v")
        assert await wait_for(changes, "via-link.txt") == [["via-link.txt"]]


async def test_callback_form_of_on_changes(tmp_path: Path, impl: WatchFolder) -> None:
    got: list[Batch] = []
    arrived = trio.Event()

    async def on_changes(batch: Batch) -> None:
        got.append(batch)
        arrived.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(impl, tmp_path, on_changes=on_changes))
        (tmp_path / "c.txt").write_text("c")
        with trio.fail_after(DEADLINE):
            await arrived.wait()
        nursery.cancel_scope.cancel()
    assert got == [["c.txt"]]


async def test_internal_files_are_not_delivered_but_ignore_file_is(
    tmp_path: Path, impl: WatchFolder
) -> None:
    async with watching(tmp_path, impl=impl) as changes:
        (tmp_path / "sub").mkdir()
        await wait_for(changes, "sub")

        (tmp_path / ".p2psync.doc.txt.tmp").write_text("partial")
        (tmp_path / "sub" / ".p2psync.x.tmp").write_text("partial")
        (tmp_path / ".p2pversions" / "sub").mkdir(parents=True)
        (tmp_path / ".p2pversions" / "sub" / "old~1.txt").write_text("old")
        (tmp_path / ".p2psync").mkdir()
        (tmp_path / ".p2psync.doc.txt.tmp").rename(tmp_path / "doc.txt")  # puller finishes
        (tmp_path / ".p2pignore").write_text("*.bak\n")
        (tmp_path / "sentinel").write_text("s")  # written last: its batch follows the rest

        batches = await wait_for(changes, "doc.txt", ".p2pignore", "sentinel")
    names = {n for b in batches for n in b}
    assert names == {"doc.txt", ".p2pignore", "sentinel"}


async def test_burst_in_one_directory_arrives_collapsed(tmp_path: Path, impl: WatchFolder) -> None:
    (tmp_path / "burst").mkdir()
    async with watching(tmp_path, max_per_dir=100, impl=impl) as changes:
        for i in range(500):
            (tmp_path / "burst" / f"f{i:03d}").write_bytes(b"x")
        batches = await wait_for(changes, *(f"burst/f{i:03d}" for i in range(500)))
    assert ["burst"] in batches
    assert all(len(b) <= 100 for b in batches)


async def test_deleting_the_root_requests_a_full_rescan(tmp_path: Path, impl: WatchFolder) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    async with watching(root, impl=impl) as changes:
        shutil.rmtree(root)
        with trio.fail_after(DEADLINE):
            while await changes.receive() is not None:
                pass  # (a batch of inner deletions may come first)


def limited_factory(err: int, calls: list[int]) -> Callable[[], BaseObserver]:
    def factory() -> BaseObserver:
        calls.append(1)
        raise OSError(err, os.strerror(err))

    return factory


@pytest.mark.parametrize(
    ("err", "setting"),
    [
        (errno.ENOSPC, "fs.inotify.max_user_watches"),
        (errno.EMFILE, "fs.inotify.max_user_instances"),
    ],
)
async def test_watch_limit_logs_one_hint_and_gives_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, err: int, setting: str
) -> None:
    calls: list[int] = []
    send, _receive = trio.open_memory_channel[Batch](1)
    caplog.set_level(logging.WARNING, logger="p2psync.watcher")
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            with pytest.raises(WatchLimitError) as info:
                factory = limited_factory(err, calls)
                await nursery.start(
                    partial(watch_folder, tmp_path, on_changes=send, observer_factory=factory)
                )
    assert calls == [1]  # tried once, no retry loop
    assert info.value.setting == setting
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert setting in warnings[0].getMessage() and "sysctl" in warnings[0].getMessage()


async def test_real_watch_limit_failure_on_start_cleans_up(tmp_path: Path) -> None:
    """ENOSPC raised while adding watches (after watchdog's own threads exist)."""

    class StartFails(Observer):  # type: ignore[misc,valid-type]
        def start(self) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    send, _receive = trio.open_memory_channel[Batch](1)
    with pytest.raises(WatchLimitError):
        await watch_folder(tmp_path, on_changes=send, observer_factory=StartFails)
    assert watchdog_threads() == []


async def test_missing_root_is_a_filesystem_error(tmp_path: Path) -> None:
    send, _receive = trio.open_memory_channel[Batch](1)
    with pytest.raises(FilesystemError) as info:
        await watch_folder(tmp_path / "nope", on_changes=send)
    assert not isinstance(info.value, WatchLimitError)
    assert watchdog_threads() == []


async def test_cancellation_joins_the_observer_threads(tmp_path: Path) -> None:
    await trio.to_thread.run_sync(lambda: None)  # warm trio's worker-thread cache
    baseline = threading.active_count()
    assert watchdog_threads() == []
    with trio.fail_after(DEADLINE):
        async with watching(tmp_path) as changes:
            assert watchdog_threads() != []
            (tmp_path / "f").write_text("f")
            await wait_for(changes, "f")
    # the observer was stopped and joined before watch_folder returned
    assert watchdog_threads() == []
    assert threading.active_count() <= baseline
