"""A folder's housekeeping beside its rounds: expired versions and stale temp files."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..errors import FilesystemError
from ..fs.base import FileSystem
from ..scanner.walker import TempsSeen
from .folder_index import FolderIndex
from .full_disk import remove_listed_temps, remove_temp_files
from .versioner import Versioner

log = logging.getLogger("p2psync.sync.folder")


async def clean_versions(
    folder_id: str, versioner: Versioner, interval: float, io_limiter: trio.CapacityLimiter
) -> None:
    """Expire old versions (trashcan days, simple keep-N, staggered thinning) every
    ``interval`` seconds, for ever."""
    clean = getattr(versioner, "clean", None)
    if clean is None:
        return
    while True:
        await trio.sleep(interval)
        try:
            removed = await trio.to_thread.run_sync(clean, limiter=io_limiter)
        except (OSError, FilesystemError) as exc:
            log.warning("%s: cleaning old versions failed: %s", folder_id, exc)
            continue
        if removed:
            log.info("%s: removed %d expired versions", folder_id, removed)


async def clean_stale_temps(
    folder_id: str,
    *,
    index: FolderIndex,
    fs: FileSystem,
    db: Callable[..., Awaitable[Any]],
    io_limiter: trio.CapacityLimiter,
    max_age_ns: int,
    seen: TempsSeen | None = None,
) -> bool:
    """Remove puller temp files once nothing is needed: an interrupted pull's partial
    file is kept (and reused) while its item is still needed, and is garbage after.
    Only those the last full scan passed (``seen``) are looked at; without a complete
    list, the folder is walked (a second walk of a million entries held the folder's
    next change back by seconds). Whether it was time to (nothing needed)."""
    need = await db(index.need_counts, folder_id)
    if need.files + need.directories + need.symlinks + need.deleted:
        return False
    cutoff = time.time_ns() - max_age_ns
    if seen is not None and seen.complete:
        removed = await trio.to_thread.run_sync(
            remove_listed_temps, fs, [n for n, mtime in seen.names if mtime < cutoff], cutoff,
            limiter=io_limiter,
        )  # fmt: skip
    else:
        removed = await trio.to_thread.run_sync(remove_temp_files, fs, cutoff, limiter=io_limiter)
    if removed:
        log.info("%s: removed %d stale temporary files", folder_id, removed)
    return True
