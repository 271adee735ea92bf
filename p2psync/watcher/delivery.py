"""Delivering watcher events to the folder: the trio side shared by every watcher
(``watcher.inotify_loop`` on Linux, ``watcher.child_process`` elsewhere,
``watcher.in_process`` in tests).

Bridge items (the names one event touched, or None for "rescan everything") are drained
into the pure ``Aggregator`` and each batch is delivered once it is due. Nothing here
imports watchdog.
"""

from __future__ import annotations

import errno
import math
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from p2psync.errors import WatchLimitError
from p2psync.watcher.aggregate import Aggregator, Batch, BridgeItem

OnChanges = Callable[[Batch], Awaitable[None]] | trio.MemorySendChannel[Batch]


async def _emit(on_changes: OnChanges, batch: Batch) -> None:
    if isinstance(on_changes, trio.MemorySendChannel):
        await on_changes.send(batch)
    else:
        await on_changes(batch)


async def aggregate_changes(
    receive: trio.MemoryReceiveChannel[BridgeItem],
    on_changes: OnChanges,
    aggregator: Aggregator,
    take_overflow: Callable[[], bool] = lambda: False,
) -> NoReturn:
    """Drain bridge items into ``aggregator`` and deliver each batch when it is due."""
    while True:
        deadline = aggregator.deadline()
        with trio.move_on_at(math.inf if deadline is None else deadline):
            item = await receive.receive()
            now = trio.current_time()
            if item is None:
                aggregator.add_full_rescan(now)
            else:
                aggregator.add(item, now)
            if take_overflow():
                aggregator.add_full_rescan(now)
            continue
        await _emit(on_changes, aggregator.take())


def limit_error(root: str, exc: OSError) -> WatchLimitError | None:
    """The error (with a how-to-fix hint) for an OS watch-limit failure, else None."""
    if exc.errno == errno.ENOSPC:
        setting, what = "fs.inotify.max_user_watches", "inotify watch limit"
    elif exc.errno == errno.EMFILE and sys.platform.startswith("linux"):
        setting, what = "fs.inotify.max_user_instances", "inotify instance limit"
    elif exc.errno == errno.EMFILE:
        setting, what = "ulimit -n", "open-files limit"
    else:
        return None
    if setting.startswith("fs."):
        fix = (
            f"raise it with `sudo sysctl {setting}=524288` and make that permanent with a "
            f"line `{setting}=524288` in /etc/sysctl.d/90-p2psync.conf"
        )
    else:
        fix = "raise the open-files limit (`ulimit -n`) for the p2psync process"
    return WatchLimitError(
        f"cannot watch {root}: {what} reached ({setting}); {fix}. "
        "Until then changes are only picked up by periodic scans.",
        setting,
    )
