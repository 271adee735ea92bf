"""watch_folder_in_child: watchdog in a real child process on a real directory."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from test_watcher_real import DEADLINE, wait_for

from p2psync.errors import FilesystemError, WatchLimitError
from p2psync.watcher import child_process
from p2psync.watcher.aggregate import Batch
from p2psync.watcher.child_process import watch_folder_in_child

CHILD_DEADLINE = 20.0  # a fresh interpreter importing watchdog, on a loaded machine


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def watch_children() -> list[int]:
    """PIDs of this process's watcher children that are still running."""
    found = []
    for pid in children_of(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"p2psync.watcher.child_main" in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def write_bytes_name(path: bytes) -> None:
    with open(path, "wb") as f:
        f.write(b"x")


@asynccontextmanager
async def watching(root: Path) -> AsyncIterator[trio.MemoryReceiveChannel[Batch]]:
    send, receive = trio.open_memory_channel[Batch](100)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(CHILD_DEADLINE):
            await nursery.start(partial(watch_folder_in_child, root, on_changes=send, delay=0.05))
        yield receive
        nursery.cancel_scope.cancel()


async def test_changes_arrive_from_the_child(tmp_path: Path) -> None:
    async with watching(tmp_path) as changes:
        (tmp_path / "a.txt").write_text("one")
        await wait_for(changes, "a.txt")
        (tmp_path / "d" / "e").mkdir(parents=True)
        await wait_for(changes, "d")
        (tmp_path / "d" / "e" / "deep.txt").write_text("x")
        await wait_for(changes, "d/e/deep.txt")
        (tmp_path / "a.txt").rename(tmp_path / "b.txt")
        await wait_for(changes, "a.txt", "b.txt")


async def test_undecodable_names_survive_the_pipe(tmp_path: Path) -> None:
    async with watching(tmp_path) as changes:
        write_bytes_name(os.fsencode(tmp_path) + b"/bad-\xff.txt")
        await wait_for(changes, os.fsdecode(b"bad-\xff.txt"))


async def test_internal_names_are_filtered_in_the_child(tmp_path: Path) -> None:
    async with watching(tmp_path) as changes:
        (tmp_path / ".p2psync.x.tmp").write_text("temp")
        (tmp_path / "real.txt").write_text("r")
        batches = await wait_for(changes, "real.txt")
        assert all(".p2psync.x.tmp" not in b for b in batches if b)


async def test_a_killed_child_means_a_full_rescan_and_a_new_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(child_process, "CHILD_RESTART_MIN", 0.05)
    async with watching(tmp_path) as changes:
        (first,) = watch_children()
        os.kill(first, signal.SIGKILL)
        with trio.fail_after(DEADLINE):
            assert await changes.receive() is None  # events may have been lost: rescan all
        # a new child is watching once it is ready; keep writing until a batch names it
        with trio.fail_after(CHILD_DEADLINE):
            while True:
                (tmp_path / "after.txt").write_text("again")
                with trio.move_on_after(1):
                    batch = await changes.receive()
                    if batch is not None and "after.txt" in batch:
                        break
        assert [pid for pid in watch_children() if pid != first]


async def test_cancellation_stops_the_child(tmp_path: Path) -> None:
    async with watching(tmp_path) as changes:
        assert len(watch_children()) == 1
        (tmp_path / "f").write_text("f")
        await wait_for(changes, "f")
    assert watch_children() == []


async def test_missing_root_is_a_filesystem_error(tmp_path: Path) -> None:
    send, _receive = trio.open_memory_channel[Batch](1)
    with trio.fail_after(CHILD_DEADLINE), pytest.raises(FilesystemError) as info:
        await watch_folder_in_child(tmp_path / "nope", on_changes=send)
    assert not isinstance(info.value, WatchLimitError)
    assert watch_children() == []


async def test_watch_limit_reported_by_the_child_is_a_watch_limit_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    line = json.dumps({"error": {"errno": errno.ENOSPC, "message": "No space left on device"}})
    script = f"import sys; print({line!r}); sys.stdin.read()"
    monkeypatch.setattr(
        child_process,
        "_child_command",
        lambda root: ([sys.executable, "-c", script], dict(os.environ)),
    )
    send, _receive = trio.open_memory_channel[Batch](1)
    with trio.fail_after(CHILD_DEADLINE), pytest.raises(WatchLimitError) as info:
        await watch_folder_in_child(tmp_path, on_changes=send)
    assert "fs.inotify.max_user_watches" in str(info.value)
    assert sum("max_user_watches" in r.getMessage() for r in caplog.records) == 1


async def test_garbage_from_the_child_means_a_full_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = (
        "import sys; print('{\"ready\": true}'); print('not json', flush=True); sys.stdin.read()"
    )
    monkeypatch.setattr(
        child_process,
        "_child_command",
        lambda root: ([sys.executable, "-c", script], dict(os.environ)),
    )
    async with watching(tmp_path) as changes:
        with trio.fail_after(DEADLINE):
            assert await changes.receive() is None


async def test_the_child_exits_when_the_daemon_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, trio\n"
        "from p2psync.watcher.child_process import watch_folder_in_child\n"
        "async def main():\n"
        "    send, receive = trio.open_memory_channel(100)\n"
        "    async with trio.open_nursery() as n:\n"
        "        await n.start(lambda task_status: watch_folder_in_child(\n"
        "            sys.argv[1], on_changes=send, task_status=task_status))\n"
        "        print('watching', flush=True)\n"
        "        await trio.sleep_forever()\n"
        "trio.run(main)\n"
    )
    daemon = await trio.lowlevel.open_process(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE
    )
    try:
        assert daemon.stdout is not None
        with trio.fail_after(CHILD_DEADLINE):
            assert b"watching" in await daemon.stdout.receive_some(100)
        (child,) = children_of(daemon.pid)
        daemon.kill()  # SIGKILL: no clean-up code runs in the daemon
        await daemon.wait()
        with trio.fail_after(DEADLINE):  # its stdin reached end of file: it stops by itself
            while True:
                if not alive(child):
                    break
                await trio.sleep(0.05)
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()


@pytest.mark.parametrize(
    "first_line", ["not json", "[1, 2]", '{"error": "no details"}', '{"ready": "yes"}', ""]
)
async def test_a_child_that_does_not_start_properly_is_a_filesystem_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_line: str
) -> None:
    script = f"import sys; print({first_line!r}, flush=True); sys.stdin.read()"
    monkeypatch.setattr(
        child_process,
        "_child_command",
        lambda root: ([sys.executable, "-c", script], dict(os.environ)),
    )
    send, _receive = trio.open_memory_channel[Batch](1)
    with trio.fail_after(CHILD_DEADLINE), pytest.raises(FilesystemError) as info:
        await watch_folder_in_child(tmp_path, on_changes=send)
    assert not isinstance(info.value, WatchLimitError)
    assert watch_children() == []


async def test_a_watcher_that_cannot_be_started_is_a_filesystem_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "no-such-python")
    monkeypatch.setattr(child_process, "_child_command", lambda root: ([missing], dict(os.environ)))
    send, _receive = trio.open_memory_channel[Batch](1)
    with pytest.raises(FilesystemError, match="cannot start the watcher"):
        await watch_folder_in_child(tmp_path, on_changes=send)
