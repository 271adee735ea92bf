"""Partial temp files on a full disk: kept for resuming a pull, dropped when they would
keep the index (and so the daemon) from writing."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from ..config import FolderConfig
from ..errors import FilesystemError
from ..fs.base import FileSystem
from ..fs.basic import BasicFS
from ..fs.internal import MARKER, VERSIONS_DIR, fold, is_own_temp_base
from ..protocol.fileinfo import FileType
from .pull import MIN_FREE_BYTES

log = logging.getLogger("p2psync.sync.folder")


def drop_partials_on_full_disk(home: Path, folders: Sequence[FolderConfig]) -> int:
    """At start-up, when the home's disk has less than MIN_FREE_BYTES free: remove the
    puller's partial temp files in folders on that disk, so that files kept for resuming
    cannot keep the index, and so the daemon, from starting. Returns how many."""
    try:
        st = os.statvfs(home)
        device = os.stat(home).st_dev
    except OSError:
        return 0
    if st.f_bavail * st.f_frsize >= MIN_FREE_BYTES:
        return 0
    removed = 0
    for fc in folders:
        try:
            if os.stat(fc.resolved_path).st_dev != device:
                continue
        except OSError:
            continue
        removed += remove_temp_files(BasicFS(fc.resolved_path), time.time_ns() + 1)
    if removed:
        log.warning("the disk of %s is full: removed %d partial temporary files", home, removed)
    return removed


def remove_temp_files(fs: FileSystem, older_than_ns: int) -> int:
    """Walk the folder (never following symlinks) and delete puller temp files last
    written before ``older_than_ns`` (younger ones may still be reused after a restart)."""
    removed = 0
    pending = [""]
    while pending:
        dirname = pending.pop()
        try:
            entries = fs.scandir(dirname)
        except (OSError, FilesystemError):
            continue
        for entry in entries:
            name = f"{dirname}/{entry.name}" if dirname else entry.name
            if entry.stat.type == FileType.DIRECTORY:
                if not (dirname == "" and fold(entry.name) in (MARKER, VERSIONS_DIR)):
                    pending.append(name)
            elif is_own_temp_base(entry.name) and entry.stat.mtime_ns < older_than_ns:
                try:
                    fs.remove(name)
                    removed += 1
                except (OSError, FilesystemError):
                    pass
    return removed


def remove_listed_temps(fs: FileSystem, names: list[str], older_than_ns: int) -> int:
    """Delete those of ``names`` that are still puller temp files (regular files, the
    puller's exact spelling) last written before ``older_than_ns``."""
    removed = 0
    for name in names:
        if not is_own_temp_base(name.rpartition("/")[2]):
            continue
        try:
            st = fs.lstat(name)
            if st.type == FileType.FILE and st.mtime_ns < older_than_ns:
                fs.remove(name)
                removed += 1
        except (OSError, FilesystemError):
            pass
    return removed


async def drop_partials_if_low(
    fs: FileSystem, folder_id: str, limiter: trio.CapacityLimiter
) -> None:
    """Paused for a full disk with less than the reserve free: drop the partial temp
    files kept for resuming (after a restart they may hold the last free bytes, and
    then nothing, not even the index, could be written)."""
    try:
        free = await trio.to_thread.run_sync(fs.free_space)
    except (OSError, FilesystemError):
        return
    if free >= MIN_FREE_BYTES:
        return
    removed = await trio.to_thread.run_sync(
        remove_temp_files, fs, time.time_ns() + 1, limiter=limiter
    )
    if removed:
        log.warning(
            "%s: removed %d partial temporary files: less than %d MiB was free",
            folder_id,
            removed,
            MIN_FREE_BYTES // 2**20,
        )


def free_space(fs: FileSystem, index_dir: Path) -> int:
    """Free bytes where a folder writes (blocking): its file system and the index's."""
    try:
        st = os.statvfs(index_dir)
        home = st.f_bavail * st.f_frsize
    except OSError:
        home = 0
    try:
        return min(home, fs.free_space())
    except (OSError, FilesystemError):
        return 0
