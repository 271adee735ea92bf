"""A folder's pull rounds as the runner asks for them: what is needed and may be pulled
now (the selection applied, the mass-delete hold), pages of needed items for a
``PullRound``, and what the round changes for the rest of the folder (the status and
events, the block server's cache, the local sequence peers wait on)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import trio

from ..index.global_reads import NeedCursor
from ..protocol.fileinfo import FileInfo
from ..protocol.vector import Vector
from ..scanner.ignore import Ignore
from ..values import FolderKind
from . import folder_schedule as sched
from .delete_hold import DeleteHold
from .folder_index import FolderIndex
from .folder_parts import FolderParts
from .folder_schedule import PullResult
from .folder_selection import FolderSelection
from .folder_tuning import FolderTuning
from .needed_deletes import collect_rename_sources
from .notify import Counter
from .pull import ItemSkipped, PullRound

log = logging.getLogger("p2psync.sync.folder")

T = TypeVar("T")


OnRefused = Callable[[str, list[FileInfo]], None]
REFUSALS_PER_ROUND = 1000  # remote changes a send-only folder reports at most per round
REFUSALS_REMEMBERED = 100_000  # (name, version) pairs it remembers having reported


def _first_needed(index: FolderIndex, folder: str, limit: int) -> list[FileInfo]:
    return list(itertools.islice(index.iter_need(folder), limit))


class FolderPulls:
    def __init__(
        self,
        parts: FolderParts,
        *,
        ignore: Callable[[], Ignore],
        tuning: FolderTuning,
        hold: DeleteHold,
        selection: FolderSelection,
        remote_updates: Counter,
        updates_in_flight: Callable[[], int],
        note_paths: Callable[[Sequence[str]], None],
        on_refused: OnRefused | None = None,
    ) -> None:
        self.id = parts.id
        self._on_refused = on_refused  # a send-only folder's refusals, for the history
        self._refused: dict[str, Vector] = {}  # name -> version already reported
        self._parts = parts
        self._config = parts.config
        self._ignore = ignore  # the ignore patterns loaded last
        self.index = parts.index
        self._db = parts.db
        self.puller = parts.puller
        self.tuning = tuning
        self.report = parts.report
        self.status = parts.report.status
        self.hold = hold
        self.selection = selection
        self.remote_updates = remote_updates  # peers' index updates stored
        self._updates_in_flight = updates_in_flight  # ... and being stored now
        self._note_paths = note_paths  # scan these in the next round
        self._retry_soon = False

    async def pull(self) -> sched.Pulled:
        """One pull round, if anything is needed and may be pulled now."""
        await self.selection.apply(self._config().selected, self._note_paths)
        if self._config().selected:  # a peer renamed a selected directory: follow it
            if await self.selection.follow_remote_renames(self._config().selected):
                await self.selection.apply(self._config().selected, self._note_paths)
        if self._config().type is FolderKind.SEND_ONLY:
            await self._report_refusals()
            return sched.Pulled(PullResult.SKIPPED)
        need = await self._db(self.index.need_counts, self.id)
        if need.deleted == 0:
            self.hold.nothing_to_delete()
        if need.files + need.directories + need.symlinks + need.deleted == 0:
            self.status.item_errors = {}
            self.hold.clear()
            return sched.Pulled(PullResult.NOTHING_NEEDED)
        if await self.hold.blocked(need.deleted):
            return sched.Pulled(PullResult.SKIPPED)
        self.report.set_state("syncing")
        done_before = self.puller.stats.items_done
        renames_before = self.puller.stats.renames
        rename_sources: dict[bytes, list[FileInfo]] = {}
        if need.deleted and need.files:
            rename_sources = await self._db(
                collect_rename_sources, self.index, self.id, self.tuning.rename_sources_max
            )
        self._retry_soon = False
        pull_round = PullRound(
            folder_id=self.id,
            puller=self.puller,
            rename_sources=rename_sources,
            flush=self._flush_pulled,
            on_finished=self.report.item_finished,
            on_skipped=self._item_skipped,
        )
        cursor = NeedCursor()
        page_size = self.tuning.pull_page
        gen = self.index.iter_need(self.id, page_size, cursor)
        updates_seen = self.remote_updates.value
        # Deletions that arrive while the round runs wait for the next round, whose
        # mass-delete guard sees them: this one applies at most the ones its guard saw.
        deletes_allowed = need.deleted

        def wanted(fi: FileInfo) -> bool:
            nonlocal deletes_allowed
            if self._ignore().is_ignored(fi.name):
                return False
            if fi.deleted:
                if deletes_allowed <= 0:
                    return False
                deletes_allowed -= 1
            return True

        async def next_page() -> list[FileInfo]:
            nonlocal gen, updates_seen
            while True:
                page = await self._db(_take, gen, page_size)
                if not page:
                    if not await self._more_to_pull(updates_seen):
                        return []
                    # continue after the last entry with what the new updates added
                    updates_seen = self.remote_updates.value
                    await trio.to_thread.run_sync(gen.close)
                    gen = self.index.iter_need(self.id, page_size, cursor)
                    continue
                selected = await self.selection.leave_out(page, self._config().selected)
                kept = [fi for fi in selected if wanted(fi)]
                if kept:  # a page of ignored names only is no reason to stop
                    return kept

        try:
            await pull_round.run(next_page)
        finally:
            await trio.to_thread.run_sync(gen.close)
        new_errors = pull_round.errors
        # e.g. a directory that became a file: its contents are gone now, go again
        go_again = self._retry_soon and self.puller.stats.items_done > done_before
        if go_again:
            self._retry_soon = False
        self.status.item_errors = new_errors
        st = self.puller.stats
        log.info(
            "%s: pull round done: %d items (%d renamed locally), %d not synced; "
            "blocks so far: %d reused locally, %d fetched",
            self.id,
            st.items_done - done_before,
            st.renames - renames_before,
            len(new_errors),
            st.blocks_local,
            st.blocks_network,
        )
        if self.puller.created:
            created, self.puller.created = self.puller.created, []
            self._note_paths(created)
            self.status.conflicts += len(created)
            made, self.puller.conflicts_made = self.puller.conflicts_made, []
            self.report.conflicts_made(self._config().devices, made)
        result = PullResult.DONE_WITH_ERRORS if new_errors else PullResult.DONE
        return sched.Pulled(result, go_again=go_again)

    async def _report_refusals(self) -> None:
        """A send-only folder takes no remote change: each one it refuses is reported
        once per version (``on_refused``: the history log)."""
        if self._on_refused is None:
            return
        need = await self._db(self.index.need_counts, self.id)
        if need.files + need.directories + need.symlinks + need.deleted == 0:
            return
        needed = await self._db(_first_needed, self.index, self.id, REFUSALS_PER_ROUND)
        fresh = [fi for fi in needed if self._refused.get(fi.name) != fi.version]
        if len(self._refused) + len(fresh) > REFUSALS_REMEMBERED:
            self._refused.clear()  # bounded: at worst a refusal is reported again
        for fi in fresh:
            self._refused[fi.name] = fi.version
        if fresh:
            self._on_refused(self.id, fresh)

    async def _more_to_pull(self, updates_seen: int) -> bool:
        """At the end of a pull round's pages: whether peers' index updates stored since
        ``updates_seen`` may have added more to pull after them, so the round can go on
        with its pipeline full instead of ending and starting again (a peer sends a big
        new tree 1,000 entries at a time). Waits for updates being stored right now. Not
        when anything is to be deleted: rename detection and the mass-delete guard look
        at a round's deletions when it starts."""
        with trio.move_on_after(self.tuning.pull_debounce_max):
            while self._updates_in_flight():
                await self.remote_updates.wait_step()
        if self.remote_updates.value == updates_seen:
            return False
        need = await self._db(self.index.need_counts, self.id)
        return need.deleted == 0

    def _item_skipped(self, fi: FileInfo, exc: ItemSkipped) -> None:
        if exc.rescan:
            self._note_paths([fi.name])
        if exc.retry_soon:
            self._retry_soon = True
        if exc.kept:
            self.report.keep_not_synced(fi, exc.reason)
        else:
            self.report.item_failed(fi, exc.reason)

    async def _flush_pulled(self) -> None:
        """Record what the puller applied (one index transaction) and make the renames
        durable (one fsync per directory); then announce it."""
        finished = self.puller.progress.finished()
        await trio.to_thread.run_sync(self.puller.flush_gated, limiter=self._parts.io_limiter)
        self.puller.progress.flushed(finished)
        sequence = self.puller.take_flushed_sequence()  # batches also flush themselves
        if sequence:
            self._parts.server.clear_cache()
            self._parts.local_sequence.set(sequence)


def _take(gen: Iterator[T], n: int) -> list[T]:
    return list(itertools.islice(gen, n))
