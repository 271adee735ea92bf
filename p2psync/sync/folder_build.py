"""One folder's parts, built from its config and handed, ready, to a FolderRunner.

The only place that decides which filesystem, versioner, puller, lock and watcher a
folder gets; the runner is given them (tests pass their own, e.g. a held filesystem).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import trio

from ..config import FolderConfig
from ..events import EventLog
from ..fs.base import FileSystem
from ..fs.basic import BasicFS
from ..identity import DeviceID
from ..index.store import IndexStore
from ..scanner.ignore import LoadedIgnore
from .folder import FolderRunner, WatchFolder
from .folder_lock import FolderLock
from .folder_pull import OnRefused
from .folder_tuning import DEFAULT_TUNING, FolderTuning
from .pull import BlockSource, Puller
from .serve import BlockServer
from .versioner import Versioner, make_versioner

IO_JOBS = 16  # block reads/writes/hashes in flight per folder, apart from index work

SourcesFor = Callable[[str, str], Awaitable[Sequence[BlockSource]]]
SourcesForMany = Callable[[str, list[str]], Awaitable[dict[str, Sequence[BlockSource]]]]


def folder_versioner(fs: FileSystem, config: FolderConfig) -> Versioner:
    """The versioner ``config`` asks for, archiving in ``fs``."""
    return make_versioner(fs, config.versioning)


def platform_watcher() -> WatchFolder:
    """How this platform watches a folder for changes."""
    if sys.platform.startswith("linux"):  # inotify on the event loop: no thread, no process
        from ..watcher.inotify_loop import watch_folder_inotify

        return watch_folder_inotify
    from ..watcher.child_process import watch_folder_in_child  # watchdog, off this process's GIL

    return watch_folder_in_child


def build_folder(
    config: FolderConfig,
    *,
    index: IndexStore,
    local: DeviceID,
    db_limiter: trio.CapacityLimiter,
    sources_for: SourcesFor,
    sources_for_many: SourcesForMany | None = None,
    events: EventLog,
    io_limiter: trio.CapacityLimiter | None = None,
    fs: FileSystem | None = None,
    hash_workers: int = 2,
    on_index_reset: Callable[[str], Awaitable[None]] | None = None,
    change_config: Callable[[Callable[..., Any]], Awaitable[Any]] | None = None,
    tuning: FolderTuning = DEFAULT_TUNING,
    on_refused: OnRefused | None = None,
) -> FolderRunner:
    """A runner for ``config`` with all its parts (``fs`` default: the folder on disk)."""
    folder_fs = fs or BasicFS(config.resolved_path)
    io = io_limiter or trio.CapacityLimiter(IO_JOBS)
    versioner = folder_versioner(folder_fs, config)
    many = sources_for_many
    ignore = LoadedIgnore()  # the runner loads them; the puller follows them too
    puller = Puller(
        folder=config.id,
        fs=folder_fs,
        index=index,
        versioner=versioner,
        limiter=io,
        sources_for=lambda name: sources_for(config.id, name),
        sources_for_many=(lambda names: many(config.id, names)) if many is not None else None,
        ignore_permissions=config.ignore_permissions,
        max_conflicts=config.max_conflicts,
        defer_records=True,  # the runner records pulled files in batches (flush)
        ignore=ignore,
    )
    return FolderRunner(
        config,
        fs=folder_fs,
        index=index,
        local=local,
        db_limiter=db_limiter,
        io_limiter=io,
        puller=puller,
        versioner=versioner,
        versioner_for=partial(folder_versioner, folder_fs),
        watch_folder=platform_watcher(),
        block_server=partial(BlockServer, config.id, folder_fs, index),
        lock=FolderLock(config.resolved_path),
        events=events,
        hash_workers=hash_workers,
        on_index_reset=on_index_reset,
        change_config=change_config,
        tuning=tuning,
        on_refused=on_refused,
        ignore=ignore,
    )
