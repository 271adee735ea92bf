"""One pull round: every needed item of a folder through the stages, with bounded
concurrency.

Pages come from ``next_page``; each is planned (plan.py) and its units of work go into a
pipeline that keeps several in flight so that the network, the disk and the CPU overlap
across pages:

- renames first, one thread hop per page (``Puller.rename_many``);
- small files in batches (``Puller.pull_batch``), ``batches_in_flight`` at a time (a batch
  gives up its place once its files are in place, while its records are stored; at most
  ``batches_unrecorded`` batches are unrecorded at once);
- every other file on its own, ``files_in_parallel`` at a time.

The folder's puller defers its index records; a finished unit flushes them (and fsyncs
the directories renames went into) unless a flush is already running, so peers hear about
progress while the round goes on. Deletions run after every page, deepest first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ...protocol.fileinfo import FileInfo
from .base import DISK_FULL, ItemSkipped
from .plan import deletes_in_order, pair_renames, plan_page, split_files
from .puller import Puller

log = logging.getLogger("p2psync.sync.pull")


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
        tunings = puller.tunings
        # A unit's slot is taken by the round's task and given back by the unit's own
        # task: each unit borrows on behalf of a token of its own.
        self._batch_slots = trio.CapacityLimiter(tunings.batches_in_flight)
        self._unrecorded = trio.CapacityLimiter(tunings.batches_unrecorded)
        self._file_slots = trio.CapacityLimiter(tunings.files_in_parallel)
        self._flushing = False

    async def run(self, next_page: Callable[[], Awaitable[list[FileInfo]]]) -> None:
        """Apply pages from ``next_page`` until it returns an empty one."""
        deletes: list[FileInfo] = []
        async with trio.open_nursery() as work:
            while page := await next_page():
                plan = plan_page(page)
                deletes += plan.deletes
                for fi in plan.directories:
                    await self.pull_one(fi)
                if plan.files:
                    await self._submit(work, plan.files)
                if DISK_FULL in self.errors.values():
                    break  # no point trying more files until space returns
        for fi in deletes_in_order(deletes):
            await self.pull_one(fi)
        await self._flush()

    # ---- units of work ---------------------------------------------------------------
    async def _submit(self, work: trio.Nursery, files: list[FileInfo]) -> None:
        files = await self._rename_batch(files)
        units = split_files(files, self.puller.tunings)
        for batch in units.small_batches:
            token = object()
            await self._batch_slots.acquire_on_behalf_of(token)
            work.start_soon(self._batch, batch, token)
        for fi in units.big:
            token = object()
            await self._file_slots.acquire_on_behalf_of(token)
            work.start_soon(self._file, fi, token)

    async def _batch(self, chunk: list[FileInfo], token: object) -> None:
        slot_held = True

        def release_slot() -> None:  # once the files are in place (records may follow)
            nonlocal slot_held
            if slot_held:
                slot_held = False
                self._batch_slots.release_on_behalf_of(token)

        try:
            async with self._unrecorded:
                result = await self.puller.pull_batch(chunk, written=release_slot)
            for fi in result.done:
                self._on_finished(fi)
            for fi, skipped in result.skipped:
                self._skipped(fi, skipped)
            for fi in result.retry:
                await self.pull_one(fi)
        finally:
            release_slot()
        await self._flush_soon()

    async def _file(self, fi: FileInfo, token: object) -> None:
        try:
            await self.pull_one(fi)
        finally:
            self._file_slots.release_on_behalf_of(token)
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
        pairs, rest = pair_renames(files, self.rename_sources)
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
