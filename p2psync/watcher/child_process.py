"""The daemon's watcher: watchdog in a child process (``watcher.child_main``), its output
turned into batches of changed names exactly like the in-process
``watcher.in_process.watch_folder``.

Why a process: watchdog parses every inotify event in Python threads. In the daemon's
process those threads compete for the GIL with the puller, and each file the puller creates
raises half a dozen events: writing 1,000 small files into a watched folder took 0.3-0.6 s
longer than into an unwatched one. In a child process that work runs on another core.
The price is a second, small Python process per watched folder (about 17 MiB).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import trio

from p2psync.errors import FilesystemError
from p2psync.watcher.aggregate import (
    DEFAULT_DELAY,
    DEFAULT_MAX_DELAY,
    DEFAULT_MAX_PER_DIR,
    Aggregator,
)
from p2psync.watcher.delivery import BridgeItem, OnChanges, aggregate_changes, limit_error

logger = logging.getLogger("p2psync.watcher")

CHANNEL_CAPACITY = 4096
CHILD_RESTART_MIN = 1.0
CHILD_RESTART_MAX = 60.0
_CHILD_STOP_TIMEOUT = 5.0


def _child_command(root: str) -> tuple[list[str], dict[str, str]]:
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return [sys.executable, "-m", "p2psync.watcher.child_main", root], env


class _Lines:
    """Lines from a byte stream (the child's stdout)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._searched = 0  # no newline before this offset of the buffer

    async def next(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n", self._searched)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._searched = 0
                return line
            self._searched = len(self._buffer)
            data = await self._stream.receive_some(65536)
            if not data:
                return None
            self._buffer += data


async def _stop_child(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.stdin is not None:
            await process.stdin.aclose()  # the child stops at end of input
        with trio.move_on_after(_CHILD_STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            logger.warning("watcher: child process %d did not stop; killing it", process.pid)
            process.kill()
            await process.wait()


async def _start_child(root: str) -> tuple[trio.Process, _Lines]:
    """Start the child and wait until its watches are in place (or it says why not)."""
    args, env = _child_command(root)
    try:
        process = await trio.lowlevel.open_process(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
    except OSError as start_error:
        raise FilesystemError(f"cannot start the watcher for {root}: {start_error}") from (
            start_error
        )
    assert process.stdout is not None
    lines = _Lines(process.stdout)
    try:
        message = _first_message(await lines.next())
        if message.get("ready") is True:
            return process, lines
        reported = message.get("error")
        error = reported if isinstance(reported, dict) else {}
        code = error.get("errno")
        failure = OSError(
            code if isinstance(code, int) else 0, str(error.get("message", "watcher failed"))
        )
        limit = limit_error(root, failure)
        if limit is not None:
            logger.warning("%s", limit)
            raise limit
        raise FilesystemError(f"cannot watch {root}: {failure.strerror or 'the watcher exited'}")
    except BaseException:
        await _stop_child(process)
        raise


def _first_message(line: bytes | None) -> dict[str, object]:
    """The child's first line as an object; {} if it is missing or not one."""
    try:
        message = json.loads(line) if line else {}
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


async def watch_folder_in_child(
    root: Path,
    *,
    on_changes: OnChanges,
    delay: float = DEFAULT_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    max_per_dir: int = DEFAULT_MAX_PER_DIR,
    limiter: trio.CapacityLimiter | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """``watch_folder`` with watchdog running in a child process (``watcher.child_main``), so its
    per-event Python work never competes with the daemon for the GIL.

    Same contract: batches of names or None, ``started()`` once the watches are in place,
    WatchLimitError / FilesystemError before that. If the child dies later, the next batch
    is a full rescan and a new child is started (with backoff).
    """
    aggregator = Aggregator(delay=delay, max_delay=max_delay, max_per_dir=max_per_dir)
    root_str = await trio.to_thread.run_sync(os.path.realpath, os.fspath(root), limiter=limiter)
    send, receive = trio.open_memory_channel[BridgeItem](CHANNEL_CAPACITY)
    overflow = _Overflow()
    process, lines = await _start_child(root_str)
    logger.debug("watcher: watching %s in child process %d", root_str, process.pid)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(aggregate_changes, receive, on_changes, aggregator, overflow.take)
        task_status.started()
        backoff = CHILD_RESTART_MIN
        while True:
            try:
                await _pump(lines, send, overflow)
            finally:
                await _stop_child(process)
            logger.warning(
                "watcher: child process for %s exited (code %s); restarting in %.0f s",
                root_str,
                process.returncode,
                backoff,
            )
            try:  # events were lost meanwhile: rescan everything
                send.send_nowait(None)
            except trio.WouldBlock:
                overflow.flag = True
            await trio.sleep(backoff)
            backoff = min(CHILD_RESTART_MAX, backoff * 2)
            try:
                process, lines = await _start_child(root_str)
            except (FilesystemError, OSError) as exc:
                logger.warning("watcher: cannot restart for %s: %s", root_str, exc)
                continue


class _Overflow:
    """Set when items were dropped (the channel was full): the next batch is a full rescan."""

    def __init__(self) -> None:
        self.flag = False

    def take(self) -> bool:
        flag, self.flag = self.flag, False
        return flag


async def _pump(
    lines: _Lines, send: trio.MemorySendChannel[BridgeItem], overflow: _Overflow
) -> None:
    """Forward the child's items until its output ends."""
    while (line := await lines.next()) is not None:
        try:
            raw = json.loads(line)["items"]
            items = [None if item is None else tuple(str(name) for name in item) for item in raw]
        except (ValueError, KeyError, TypeError):
            logger.error("watcher: unexpected line from the child process: %.200r", line)
            items = [None]
        for item in items:
            try:
                send.send_nowait(item)
            except trio.WouldBlock:
                overflow.flag = True  # the aggregator sees it with its next item
                break
