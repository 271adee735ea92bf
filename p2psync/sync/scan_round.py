"""One scan of a folder: walk and hash (the scanner) into the index, batch by batch.

The scanner walks and hashes the next batch in a worker thread while this one is stored.
What is stored, and when, matters to peers:

- a new local entry identical to the global one (a directory the puller created as a
  parent, a file that already had the right content, an index rebuilt from disk) takes the
  global version instead of a new one, which would be concurrent with the cluster's;
- deletions are stored after everything else the scan found, so a peer sees the new names
  of a rename before the old ones go and can apply it as a local rename;
- a targeted (watcher) scan that could delete something is stored as one change, so a
  directory rename reaches peers as its adds and deletes together. A scan of paths with
  nothing live in the index under them (a tree moved or copied in from outside) can only
  add, so it is stored and sent batch by batch: peers start pulling after the first
  batch instead of after the whole tree.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from ..config import FolderConfig
from ..errors import FilesystemError
from ..fs.base import FileSystem
from ..fs.internal import MARKER
from ..identity import DeviceID
from ..protocol.fileinfo import LocalFileInfo
from ..rules import equivalent
from ..scanner.ignore import Ignore
from ..scanner.scan import FLAG_NOT_SELECTED, ScanBatch, ScanProgress, scan
from ..scanner.walker import TempsSeen
from ..values import FolderKind
from .folder_index import FolderIndex
from .overrides import FLAG_RECEIVE_ONLY

log = logging.getLogger("p2psync.sync.folder")

HELD_TOMBSTONES_MAX = 50_000
SCAN_BATCH = 1000  # entries the scanner hands over (and a streamed scan stores) at a time
PROGRESS_INTERVAL = 1.0  # seconds between progress reports of a running scan


@dataclass
class ScanResult:
    changed: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    temps_seen: TempsSeen | None = None  # a full scan's: the puller's temp files it passed
    deletions_withheld: int = 0  # found while the folder marker was gone: not stored


class IndexView:
    """The scanner's LocalIndexView over the index store, for one folder."""

    def __init__(self, index: FolderIndex, folder: str) -> None:
        self.index = index
        self.folder = folder

    def get_local(self, name: str) -> LocalFileInfo | None:
        return self.index.get_local(self.folder, name)

    def iter_local(self, prefix: str = "") -> Iterator[LocalFileInfo]:
        return self.index.iter_local(self.folder, prefix)


class ScanRound:
    def __init__(
        self,
        *,
        folder_id: str,
        config: FolderConfig,
        fs: FileSystem,
        index: FolderIndex,
        local: DeviceID,
        ignore: Ignore,
        hash_workers: int,
        db: Callable[..., Awaitable[Any]],
        on_stored: Callable[[list[LocalFileInfo]], None],
        batch_size: int = SCAN_BATCH,
        progress: ScanProgress | None = None,
        on_progress: Callable[[ScanProgress], None] | None = None,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.id = folder_id
        self.config = config
        self.fs = fs
        self.index = index
        self.local = local
        self.ignore = ignore
        self.hash_workers = hash_workers
        self._db = db
        self._on_stored = on_stored
        self.batch_size = batch_size
        self.progress = progress or ScanProgress(time.monotonic())
        self._on_progress = on_progress
        self.progress_interval = progress_interval

    async def run(self, paths: list[str] | None) -> ScanResult:
        """Scan ``paths`` (None: the whole folder) and store what changed."""
        full = paths is None
        result = ScanResult(temps_seen=TempsSeen() if full else None)
        started = time.monotonic()
        receive_only = self.config.type is FolderKind.RECEIVE_ONLY
        # In a thread: the scan's roots are read from the index (a path's parents).
        batches = await self._db(
            functools.partial(
                scan,
                self.fs,
                IndexView(self.index, self.id),
                short_id=self.local.short_id,
                now=lambda: int(time.time()),
                ignore=self.ignore,
                subpaths=paths,
                hash_workers=self.hash_workers,
                ignore_permissions=self.config.ignore_permissions,
                batch_size=self.batch_size,
                progress=self.progress,
                selection=self.config.selected,
                temps_seen=result.temps_seen,
            )
        )
        devices = await self._db(self.index.devices, self.id)
        # a targeted scan is held and stored as one change only if it could delete
        hold = not full and await self._db(self.index.has_live_local, self.id, paths)
        has_peers = any(d != self.local.raw for d in devices)
        tombstones: list[LocalFileInfo] = []
        held: list[LocalFileInfo] = []
        send, receive = trio.open_memory_channel[ScanBatch](1)
        try:
            async with trio.open_nursery() as nursery, receive:
                nursery.start_soon(_produce_batches, batches, send)
                if self._on_progress is not None:
                    nursery.start_soon(self._report_progress, self._on_progress)
                async for batch in receive:
                    result.problems.extend(batch.problems)
                    files = list(batch.files)
                    if files and has_peers:
                        files = await self._db(self._adopt_equivalent_globals, files)
                    if self.config.ignore_permissions:
                        files = [f.with_(no_permissions=True) for f in files]
                    if batch.refreshed:
                        # Same version and content; only local bookkeeping (inode) changed.
                        await self._db(self.index.update_local, self.id, list(batch.refreshed))
                    if receive_only:
                        files = [
                            f
                            if f.local_flags & FLAG_NOT_SELECTED
                            else f.with_(
                                local_flags=f.local_flags | FLAG_RECEIVE_ONLY, invalid=True
                            )
                            for f in files
                        ]
                    # deletions last (see the module docstring)
                    tombstones.extend(f for f in files if f.deleted)
                    files = [f for f in files if not f.deleted]
                    if len(tombstones) >= HELD_TOMBSTONES_MAX:
                        files.extend(await self._unless_marker_lost(tombstones, result))
                        tombstones = []
                    if hold:
                        # stored as one change (see the module docstring)
                        held.extend(files)
                        if len(held) < HELD_TOMBSTONES_MAX:
                            continue
                        files, held = held, []
                    result.changed += await self._store(files)
                nursery.cancel_scope.cancel()  # the progress reports
            tombstones = await self._unless_marker_lost(tombstones, result)
            result.changed += await self._store(held + tombstones)
        finally:
            await trio.to_thread.run_sync(batches.close)
        result.seconds = time.monotonic() - started
        return result

    async def _unless_marker_lost(
        self, tombstones: list[LocalFileInfo], result: ScanResult
    ) -> list[LocalFileInfo]:
        """The deletions to store: none if the folder marker went away since the round
        began. The round checked it before the walk, but a marker removed during the walk
        (a disk unmounted, a folder being emptied) would let what the walk missed go to
        peers as deletions. Withheld, the next round finds the marker lost and checks the
        index against the disk once it is back."""
        if not tombstones:
            return tombstones

        def marker_there() -> bool:
            try:
                self.fs.lstat(MARKER)
            except (OSError, FilesystemError):
                return False
            return True

        if await trio.to_thread.run_sync(marker_there):
            return tombstones
        log.warning(
            "%s: folder marker %s went missing during a scan; %d deletions it found are "
            "not recorded",
            self.id,
            MARKER,
            len(tombstones),
        )
        result.deletions_withheld += len(tombstones)
        return []

    async def _report_progress(self, report: Callable[[ScanProgress], None]) -> None:
        while True:
            await trio.sleep(self.progress_interval)
            report(self.progress)

    async def _store(self, files: list[LocalFileInfo]) -> int:
        if not files:
            return 0
        stored = await self._db(self.index.update_local, self.id, files)
        if stored:
            self._on_stored(stored)
        return len(stored)

    def _adopt_equivalent_globals(self, files: list[LocalFileInfo]) -> list[LocalFileInfo]:
        """New local entries identical to the global one take its version (see the
        module docstring)."""
        out = []
        ignore_perms = self.config.ignore_permissions
        for fi in files:
            if not fi.deleted and not fi.invalid:
                g = self.index.get_global(self.id, fi.name)
                if g is not None and equivalent(fi, g, ignore_perms) and g.version != fi.version:
                    fi = fi.with_(version=g.version, modified_by=g.modified_by)
            out.append(fi)
        return out


async def _produce_batches(
    batches: Iterator[ScanBatch], send: trio.MemorySendChannel[ScanBatch]
) -> None:
    """Advance the scan generator in a worker thread, one batch ahead of the consumer."""
    async with send:
        while (batch := await trio.to_thread.run_sync(next, batches, None)) is not None:
            await send.send(batch)
