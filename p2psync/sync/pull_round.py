"""One pull round: apply every needed item of a folder, with bounded concurrency.

Pages of needed items arrive in name order (parents before children). Directories are
created in order as their page comes; files go into a pipeline that keeps several units
of work in flight so that the network, the disk and the CPU overlap across pages:

- renames first, one thread hop per page (``Puller.rename_many``): a needed new file
  whose content is a needed deletion becomes a local rename;
- small files (up to 1 MiB) in batches of up to ``SMALL_FILES_PER_BATCH`` files and 8 MiB
  (``small_files.pull_small_files``), ``BATCHES_IN_FLIGHT`` at a time (a batch gives up
  its place once its files are in place, while its records are stored; at most
  ``BATCHES_UNRECORDED`` batches are unrecorded at once);
- every other file on its own, ``FILES_IN_PARALLEL`` at a time.

The puller defers its index records; a finished unit flushes them (and fsyncs the
directories renames went into) unless a flush is already running, so peers hear about
progress while the round goes on. Deletions wait until every page is done and run
deepest first, so a directory is empty when its turn comes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ..protocol.model import FileInfo
from .puller import DISK_FULL, ItemSkipped, Puller
from .small_files import batches, is_small_file, pull_small_files

log = logging.getLogger("p2psync.sync.pull")

FILES_IN_PARALLEL = 64
SMALL_FILES_PER_BATCH = 64
BATCHES_IN_FLIGHT = 2  # batches checking, fetching or writing
BATCHES_UNRECORDED = 4  # and batches whose records are still being stored


class PullRound:
    def __init__(
        self,
        *,
        folder_id: str,
        puller: Puller,
        rename_sources: dict[bytes, list[FileInfo]],
        flush: Callable[[], Awaitable[None]],
        on_finished: Callable[[FileInfo], None],
        on_skipped: Callable[[FileInfo, ItemSkipped], None],
    ) -> None:
        self.folder_id = folder_id
        self.puller = puller
        self.rename_sources = rename_sources
        self._flush = flush
        self._on_finished = on_finished
        self._on_skipped = on_skipped
        self.errors: dict[str, str] = {}  # items to retry, with the reason
        self.not_synced: dict[str, str] = {}  # items kept as "not synced here" (not retried)
        self._batch_slots = trio.Semaphore(BATCHES_IN_FLIGHT)
        self._unrecorded = trio.Semaphore(BATCHES_UNRECORDED)
        self._file_slots = trio.Semaphore(FILES_IN_PARALLEL)
        self._flushing = False

    async def run(self, next_page: Callable[[], Awaitable[list[FileInfo]]]) -> None:
        """Apply pages from ``next_page`` until it returns an empty one."""
        deletes: list[FileInfo] = []
        async with trio.open_nursery() as work:
            while page := await next_page():
                for fi in page:
                    if fi.deleted:
                        deletes.append(fi)
                    elif fi.is_directory:
                        await self.pull_one(fi)
                files = [fi for fi in page if not fi.deleted and not fi.is_directory]
                if files:
                    await self._submit(work, files)
                if DISK_FULL in self.errors.values():
                    break  # no point trying more files until space returns
        for fi in reversed(deletes):  # deepest first
            await self.pull_one(fi)
        await self._flush()

    # ---- units of work ---------------------------------------------------------------
    async def _submit(self, work: trio.Nursery, files: list[FileInfo]) -> None:
        files = await self._rename_batch(files)
        small = [fi for fi in files if is_small_file(fi)]
        for batch in batches(small, SMALL_FILES_PER_BATCH):
            await self._batch_slots.acquire()
            work.start_soon(self._batch, batch)
        for fi in files:
            if not is_small_file(fi):
                await self._file_slots.acquire()
                work.start_soon(self._file, fi)

    async def _batch(self, chunk: list[FileInfo]) -> None:
        slot_held = True

        def release_slot() -> None:  # once the files are in place (records may follow)
            nonlocal slot_held
            if slot_held:
                slot_held = False
                self._batch_slots.release()

        try:
            async with self._unrecorded:
                result = await pull_small_files(self.puller, chunk, written=release_slot)
            for fi in result.done:
                self._on_finished(fi)
            for fi, skipped in result.skipped:
                self._skipped(fi, skipped)
            for fi in result.retry:
                await self.pull_one(fi)
        finally:
            release_slot()
        await self._flush_soon()

    async def _file(self, fi: FileInfo) -> None:
        try:
            await self.pull_one(fi)
        finally:
            self._file_slots.release()
        await self._flush_soon()

    async def _flush_soon(self) -> None:
        """Flush now unless another unit is already flushing (its flush or the round's
        final one picks up what this unit recorded)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            await self._flush()
        finally:
            self._flushing = False

    async def _rename_batch(self, files: list[FileInfo]) -> list[FileInfo]:
        """Apply the files that are renames of needed deletions; return the rest. A failed
        rename falls back to a normal pull (which tries any other rename candidates, then
        copies the blocks locally)."""
        if not self.rename_sources:
            return files
        pairs: list[tuple[FileInfo, FileInfo]] = []
        rest: list[FileInfo] = []
        for fi in files:
            candidates = self.rename_sources.get(fi.blocks_hash()) if fi.blocks else None
            if candidates:
                pairs.append((fi, candidates.pop()))
            else:
                rest.append(fi)
        if not pairs:
            return rest
        renamed = await self.puller.rename_many(pairs)
        for (fi, _gone), ok in zip(pairs, renamed, strict=True):
            if ok:
                self._on_finished(fi)
            else:
                rest.append(fi)
        return rest

    async def _try_rename(self, fi: FileInfo) -> bool:
        if fi.deleted or not fi.is_file or not self.rename_sources or not fi.blocks:
            return False
        candidates = self.rename_sources.get(fi.blocks_hash())
        while candidates:
            gone = candidates.pop()
            if await self.puller.rename_into(fi, gone):
                return True
        return False

    async def pull_one(self, fi: FileInfo) -> None:
        try:
            if not await self._try_rename(fi):
                await self.puller.pull_item(fi)
        except ItemSkipped as exc:
            self._skipped(fi, exc)
            return
        except Exception as exc:  # a bug must cost one item, not the folder
            log.exception("%s: pulling %r failed", self.folder_id, fi.name)
            self.errors[fi.name] = f"internal error: {exc}"
            return
        self._on_finished(fi)

    def _skipped(self, fi: FileInfo, exc: ItemSkipped) -> None:
        if exc.kept:
            self.puller.keep_not_synced(fi)
            self.not_synced[fi.name] = exc.reason
        else:
            self.errors[fi.name] = exc.reason
        self._on_skipped(fi, exc)
