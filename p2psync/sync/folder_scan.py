"""A folder's scans as the runner asks for them: one ``ScanRound`` run, and what it
changes for the rest of the folder (the status and events, the block server's cache,
the local sequence peers wait on, a renamed selected directory)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..protocol.fileinfo import LocalFileInfo
from ..scanner.ignore import Ignore
from ..scanner.walker import TempsSeen
from .folder_parts import FolderParts
from .folder_selection import FolderSelection
from .scan_round import ScanRound

log = logging.getLogger("p2psync.sync.folder")


class FolderScans:
    def __init__(
        self,
        parts: FolderParts,
        selection: FolderSelection,
        *,
        hash_workers: int,
        progress_interval: float,
    ) -> None:
        self.id = parts.id
        self._parts = parts
        self._config = parts.config
        self.report = parts.report
        self.status = parts.report.status
        self.selection = selection
        self.hash_workers = hash_workers
        self.progress_interval = progress_interval
        # the last full scan's temp files, for the stale-temp cleaner (None: walk for them)
        self.temps_seen: TempsSeen | None = None

    async def scan(
        self,
        paths: list[str] | None,
        ignore: Ignore,
        failed: Callable[[], None],
        marker_lost: Callable[[], None],
    ) -> int:
        """Scan everything (``paths`` None) or ``paths``; how many entries changed.
        ``failed`` is called if the scan itself fails (before the error goes on),
        ``marker_lost`` if it withheld deletions because the folder marker went away."""
        full = paths is None
        parts = self._parts
        self.report.set_state("scanning")
        scan_round = ScanRound(
            folder_id=self.id,
            config=self._config(),
            fs=parts.fs,
            index=parts.index,
            local=parts.local,
            ignore=ignore,
            hash_workers=self.hash_workers,
            db=parts.db,
            on_stored=self._stored,
            on_progress=self.report.scan_progressed,
            progress_interval=self.progress_interval,
        )
        self.status.scan_progress = scan_round.progress
        try:
            result = await scan_round.run(paths)
        except BaseException:
            failed()
            raise
        finally:
            self.status.scan_progress = None
        self.status.last_scan = time.time()
        if result.deletions_withheld:
            marker_lost()
        if full:
            self.temps_seen = result.temps_seen
        self.status.scan_problems = result.problems[:1000]
        for name, reason in result.problems[:20]:
            log.warning("%s: cannot sync %r: %s", self.id, name, reason)
        self.report.events.emit(
            "LocalIndexUpdated" if result.changed else "ScanCompleted",
            folder=self.id,
            changed=result.changed,
            full=full,
            seconds=round(result.seconds, 3),
        )
        await self.selection.follow_renames(self._config().selected)
        if full and not self.status.initial_scan_done:
            self.status.initial_scan_done = True
            self.report.events.emit(
                "InitialScanCompleted",
                folder=self.id,
                **scan_round.progress.snapshot(time.monotonic()),
            )
        return result.changed

    def _stored(self, stored: list[LocalFileInfo]) -> None:
        self._parts.server.clear_cache()
        self._parts.local_sequence.set(max(f.sequence for f in stored))
        self.selection.note_stored(stored, self._config().selected)
