"""A folder's watcher: OS change notifications become scan requests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..errors import FilesystemError
from ..resource_faults import RESOURCE_ERRORS, describe, first_leaf

log = logging.getLogger("p2psync.sync.folder")

# watches a folder root, sends batches of changed paths (None: rescan everything)
WatchFolder = Callable[..., Awaitable[object]]


async def watch_changes(
    folder_id: str,
    root: Path,
    delay: float,
    watch_folder: WatchFolder,
    scope: trio.CancelScope,
    request_scan: Callable[[list[str] | None], None],
    on_failed: Callable[[], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Feed watcher batches into ``request_scan``; ready once the OS watches are armed.
    ``scope`` is cancelled when the watcher settings change (the folder starts it
    again); ``on_failed`` when it stopped for lack of resources (watch again later)."""
    armed: list[bool] = []

    def started() -> None:
        armed.append(True)
        task_status.started()

    try:
        await _watch_until_failed(
            folder_id, root, delay, watch_folder, scope, request_scan, started
        )
    except* RESOURCE_ERRORS as group:  # e.g. out of file handles: watch again later
        log.warning(
            "%s: stopped watching for changes (%s); rescanning, watching again next round",
            folder_id,
            describe(first_leaf(group)),
        )
        on_failed()
        if not armed:
            task_status.started()


async def _watch_until_failed(
    folder_id: str,
    root: Path,
    delay: float,
    watch_folder: WatchFolder,
    scope: trio.CancelScope,
    request_scan: Callable[[list[str] | None], None],
    started: Callable[[], None],
) -> None:
    send, receive = trio.open_memory_channel[list[str] | None](16)
    armed = False
    with scope:
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(
                    lambda task_status: watch_folder(
                        root, on_changes=send, delay=delay, task_status=task_status
                    )
                )
            except FilesystemError as exc:  # e.g. the inotify watch limit
                log.warning(
                    "%s: not watching for changes (%s); relying on periodic scans", folder_id, exc
                )
                started()
                return
            started()
            armed = True
            async with receive:
                async for paths in receive:
                    request_scan(paths)
    if scope.cancelled_caught and not armed:
        started()
