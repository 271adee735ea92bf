"""Filesystem watcher: watchdog events bridged into trio, debounced into rescan batches.

watchdog's observer runs its own threads. Its handler (``EventBridge``) turns each event
into folder-relative names and hands them to the trio thread with
``TrioToken.run_sync_soon``, where they go into a BOUNDED memory channel with
``send_nowait``: the observer thread never waits on trio. If the channel is full the
names are dropped and an overflow flag makes the next batch a full rescan (``None``).
``aggregate_changes`` drains the channel through the pure ``Aggregator``.

The watcher is an optimisation: watchers miss events, so the folder still runs periodic
full scans. When the OS watch limit is hit, ``watch_folder`` logs one warning and raises
``WatchLimitError`` from ``nursery.start`` so the caller can carry on without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import trio
from watchdog.events import (
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from p2psync.errors import FilesystemError
from p2psync.watcher.aggregate import (
    DEFAULT_DELAY,
    DEFAULT_MAX_DELAY,
    DEFAULT_MAX_PER_DIR,
    Aggregator,
)
from p2psync.watcher.delivery import (
    BridgeItem,
    OnChanges,
    aggregate_changes,
    limit_error,
)
from p2psync.watcher.event_names import EVENT_FILTER, names_for_event

__all__ = ["EVENT_FILTER", "BridgeItem", "aggregate_changes", "names_for_event", "watch_folder"]

logger = logging.getLogger(__name__)

DEFAULT_BRIDGE_CAPACITY = 4096
_JOIN_TIMEOUT = 10.0

ObserverFactory = Callable[[], BaseObserver]


class EventBridge(FileSystemEventHandler):
    """watchdog handler → bounded trio channel; never blocks the observer thread."""

    def __init__(self, root: str, token: trio.lowlevel.TrioToken, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("bridge capacity must be at least 1")
        self._root = root
        self._token = token
        self._send, self.receive = trio.open_memory_channel[BridgeItem](capacity)
        self._overflowed = False

    def dispatch(self, event: FileSystemEvent) -> None:
        """Called in the observer thread for every event; must never raise or block."""
        try:
            item = names_for_event(self._root, event)
        except Exception:  # a crash here would kill watchdog's thread silently
            logger.exception("watcher: could not interpret %r; requesting a full rescan", event)
            item = None
        if item == ():
            return
        if item is None:
            logger.warning("watcher: folder root %s was deleted or moved", self._root)
        try:
            self._token.run_sync_soon(self._deliver, item)
        except trio.RunFinishedError:
            pass  # trio has shut down; nobody is listening any more

    def _deliver(self, item: BridgeItem) -> None:
        """Runs in the trio thread."""
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            if not self._overflowed:
                logger.info("watcher: event channel full for %s; will rescan fully", self._root)
            self._overflowed = True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the watcher is shutting down

    def take_overflow(self) -> bool:
        """True (once) if names were dropped since the last call."""
        overflowed, self._overflowed = self._overflowed, False
        return overflowed

    def close(self) -> None:
        self._send.close()
        self.receive.close()


def _start_observer(
    factory: ObserverFactory, bridge: EventBridge, root: str, holder: list[BaseObserver]
) -> None:
    """Blocking: create, schedule and start the observer (adds the OS watches)."""
    observer = factory()
    try:
        observer.schedule(bridge, root, recursive=True, event_filter=EVENT_FILTER)
        observer.start()
    except BaseException:
        _stop_observer(observer)
        raise
    holder.append(observer)


def _stop_observer(observer: BaseObserver) -> None:
    """Blocking: stop the observer and join its threads (emitters are joined by stop())."""
    observer.stop()
    if observer.ident is not None:  # join() on a never-started thread raises
        observer.join(_JOIN_TIMEOUT)
        if observer.is_alive():
            logger.error("watcher: observer thread did not stop within %.0f s", _JOIN_TIMEOUT)


async def watch_folder(
    root: Path,
    *,
    on_changes: OnChanges,
    delay: float = DEFAULT_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    max_per_dir: int = DEFAULT_MAX_PER_DIR,
    bridge_capacity: int = DEFAULT_BRIDGE_CAPACITY,
    observer_factory: ObserverFactory = Observer,
    limiter: trio.CapacityLimiter | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Watch ``root`` recursively and deliver batches of changed folder-relative names.

    Each batch is a sorted list of names to rescan, or None for "rescan the whole folder"
    (events were lost or the root went away). Runs until cancelled; ``task_status.started()``
    is called once the OS watches are in place. Raises (before started) WatchLimitError if
    the OS watch limit is reached — after logging one warning naming the sysctl — and
    FilesystemError if the folder cannot be watched for another reason.
    """
    aggregator = Aggregator(delay=delay, max_delay=max_delay, max_per_dir=max_per_dir)
    # Resolved: watches do not follow symlinks, so a symlinked root would watch the link.
    root_str = await trio.to_thread.run_sync(os.path.realpath, os.fspath(root), limiter=limiter)
    bridge = EventBridge(root_str, trio.lowlevel.current_trio_token(), bridge_capacity)
    holder: list[BaseObserver] = []  # filled by the worker thread even if we are cancelled
    try:
        try:
            await trio.to_thread.run_sync(
                _start_observer, observer_factory, bridge, root_str, holder, limiter=limiter
            )
        except OSError as exc:
            limit = limit_error(root_str, exc)
            if limit is not None:
                logger.warning("%s", limit)
                raise limit from exc
            raise FilesystemError(f"cannot watch {root_str}: {exc.strerror or exc}") from exc
        logger.debug("watcher: watching %s", root_str)
        task_status.started()
        await aggregate_changes(bridge.receive, on_changes, aggregator, bridge.take_overflow)
    finally:
        if holder:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_stop_observer, holder[0], limiter=limiter)
        bridge.close()
