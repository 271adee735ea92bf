"""Writes the change log off the event loop, in batches, without ever holding up a sync.

The engine calls :meth:`HistoryService.note` with a folder's recorded ``(before, after)``
pairs; the rows are derived at once (cheap, pure) and queued on a bounded channel. One
writer task drains the queue into one transaction per burst. When the queue is full —
the disk is slower than the sync for a moment — or the log cannot be written (disk full,
damaged file), rows are dropped and counted rather than slowing or stopping the sync:
history is a record of the data, never the data itself. Old rows are pruned at start and
every hour, per folder, by its retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from ..protocol.fileinfo import FileInfo, LocalFileInfo
from .changes import Change, Origin, changes_of, refusals_of
from .log import HistoryError, HistoryLog, Retention

log = logging.getLogger(__name__)

QUEUE_BATCHES = 256  # batches waiting for the writer before new ones are dropped
MAX_ROWS_PER_WRITE = 20_000
PRUNE_INTERVAL_S = 3600.0
_WARN_INTERVAL_S = 60.0


@dataclass
class HistoryStats:
    written: int = 0
    dropped: int = 0
    last_error: str = ""


class HistoryService:
    """``open_log`` runs when the service starts (in a worker thread): the daemon opens
    the index first, and a home that the index refuses is left untouched."""

    def __init__(
        self,
        open_log: Callable[[], HistoryLog],
        retention_of: Callable[[], dict[str, Retention]],
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._open_log = open_log
        self.log: HistoryLog | None = None  # None until started, or when it cannot open
        self.off_reason = ""
        self._retention_of = retention_of  # folder ID -> retention, read at each prune
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[list[Change]](QUEUE_BATCHES)
        self._token = trio.lowlevel.current_trio_token()  # made in the daemon's trio thread
        self.stats = HistoryStats()
        self._last_warning = -_WARN_INTERVAL_S
        self._queued = 0  # rows queued so far
        self._handled = 0  # of those, rows written or dropped by the writer
        self._progress = trio.Event()

    def note(
        self,
        folder: str,
        pairs: Iterable[tuple[LocalFileInfo | None, LocalFileInfo]],
        origin: Origin,
    ) -> None:
        """Queue the history of one recorded batch (never blocks; from the trio thread)."""
        rows = changes_of(folder, pairs, origin=origin, at_ns=self._clock())
        self.note_changes(rows)

    def note_threadsafe(
        self,
        folder: str,
        pairs: list[tuple[LocalFileInfo | None, LocalFileInfo]],
        applied: bool,
    ) -> None:
        """The index's observer: called on whichever thread stored the change; the rows
        are made there, and queued on the event loop without waiting for it."""
        rows = changes_of(
            folder, pairs, origin=Origin.PULLED if applied else Origin.LOCAL, at_ns=self._clock()
        )
        if rows:
            try:
                self._token.run_sync_soon(self.note_changes, rows)
            except trio.RunFinishedError:
                pass  # the daemon is stopping: nothing will write them any more

    def note_refused(self, folder: str, needed: list[FileInfo]) -> None:
        """Queue the remote changes a send-only folder refuses (from the trio thread)."""
        self.note_changes(refusals_of(folder, needed, at_ns=self._clock()))

    def note_changes(self, rows: list[Change]) -> None:
        if not rows:
            return
        try:
            self._send.send_nowait(rows)
        except trio.WouldBlock:
            self._dropped(len(rows), "the history writer is behind")
        else:
            self._queued += len(rows)

    async def drained(self) -> None:
        """Wait until every row queued so far is written (or dropped by the writer)."""
        target = self._queued
        while self._handled < target:
            if self._progress.is_set():
                self._progress = trio.Event()
            await self._progress.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            self.log = await trio.to_thread.run_sync(self._open_log)
        except HistoryError as exc:  # history is a record of the data, never a reason
            self.off_reason = str(exc)  # for the daemon not to run: off, rows dropped
            log.error("the change history is off: %s", exc)
        try:
            await self._serve(task_status)
        finally:
            if self.log is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.log.close)

    async def _serve(self, task_status: trio.TaskStatus[None]) -> None:
        await self._prune()
        task_status.started()
        next_prune = trio.current_time() + PRUNE_INTERVAL_S
        while True:
            with trio.move_on_at(next_prune):
                batch = await self._receive.receive()
                while len(batch) < MAX_ROWS_PER_WRITE:
                    try:
                        batch += self._receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                await self._write(batch)
            if trio.current_time() >= next_prune:
                await self._prune()
                next_prune = trio.current_time() + PRUNE_INTERVAL_S

    async def _write(self, rows: list[Change]) -> None:
        try:
            if self.log is None:
                raise HistoryError(self.off_reason)
            await trio.to_thread.run_sync(self.log.record, rows)
        except HistoryError as exc:
            self._dropped(len(rows), str(exc))
        else:
            self.stats.written += len(rows)
        self._handled += len(rows)
        self._progress.set()

    async def _prune(self) -> None:
        if self.log is None:
            return
        now = self._clock()
        for folder, retention in self._retention_of().items():
            try:
                await trio.to_thread.run_sync(self.log.prune, folder, retention, now)
            except HistoryError as exc:
                self._warn(str(exc))

    def _dropped(self, n: int, why: str) -> None:
        self.stats.dropped += n
        self.stats.last_error = why
        self._warn(f"history: {n} entries not recorded ({why})")

    def _warn(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_INTERVAL_S:
            self._last_warning = now
            log.warning("%s", text)
