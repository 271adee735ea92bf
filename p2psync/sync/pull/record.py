"""Stage *record*: what was applied goes into the index, in batches.

Every applied item leaves a record (``record``). With ``defer`` (the folder's puller)
records wait in memory and ``flush`` writes them in one transaction, after fsyncing the
directories whose entries changed (one fsync per directory, not per file). Directories
that only gained entries are fsynced before those that lost some: a file moved between
two directories must never be durable under neither name (a power cut after the source
directory's fsync but before the target's), and a directory removed or replaced must not
take the durable names of files moved out of it along with it. Before a
rename puts a file into place, the record it will leave is noted (``note_applying``): a
daemon killed between the rename and the flush adopts it at its next start
(``adopt_applied``) instead of taking it for a local edit.

``PageMemo`` is what the current page wrote or checked that the index does not show
yet (block places, parent directories); a flush forgets it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from ...fs.base import FileStat
from ...protocol.fileinfo import FileInfo, LocalFileInfo
from ...scanner.scan import FLAG_NOT_SYNCED_HERE
from .base import ItemSkipped, PullSettings

log = logging.getLogger("p2psync.sync.puller")

RECENT_BLOCKS_MAX = 100_000  # bounded: the block map catches up at flush


@dataclass
class PageMemo:
    """Written or checked during this page, not yet in the index."""

    blocks: dict[bytes, tuple[str, int, int]] = field(default_factory=dict)  # hash -> place
    dirs: set[str] = field(default_factory=set)  # parent directories known to exist


class Recorder:
    def __init__(self, settings: PullSettings, *, defer: bool) -> None:
        self._settings = settings
        self.defer = defer
        self.memo = PageMemo()
        self._pending: list[LocalFileInfo] = []
        self._gained: set[str] = set()  # directories entries went into
        self._lost: set[str] = set()  # directories entries left (renamed away, deleted)
        self._lock = threading.Lock()
        self._flushed_sequence = 0

    # ---- one item ----------------------------------------------------------------------
    def as_recorded(self, fi: FileInfo, st: FileStat | None) -> LocalFileInfo:
        """The local record of ``fi`` once applied, with ``st`` the stat of what was put in
        place (a rename keeps the temp file's inode, mode and mtime)."""
        return fi.with_(
            sequence=0,
            modified_ns=fi.modified_ns
            if (st is None or fi.is_directory or fi.is_symlink)
            else st.mtime_ns,
            permissions=st.permissions
            if (st and not fi.is_symlink and not self._settings.ignore_permissions)
            else fi.permissions,
        ).as_local(inode=st.inode if st else 0)

    def record(
        self, fi: FileInfo, st: FileStat | None, recorded: LocalFileInfo | None = None
    ) -> None:
        """Record ``fi`` as applied; ``recorded``: its ``as_recorded(fi, st)`` if the
        caller has it already (a batch noted it before its renames)."""
        stored = self.as_recorded(fi, st) if recorded is None else recorded
        if self.defer:
            with self._lock:
                self._pending.append(stored)
                # Blocks written but not yet in the index's block map: still reusable.
                if stored.is_file and not stored.deleted:
                    self._remember_locked(stored)
        else:
            self._sync_dirs()
            self._settings.index.update_local(self._settings.folder, [stored], applied=True)

    def keep_not_synced(self, fi: FileInfo, flags: int = FLAG_NOT_SYNCED_HERE) -> None:
        """Keep ``fi`` (refused for good: ``ItemSkipped.kept``) as a local invalid entry
        with its version, the way an ignored file is kept: it is no longer needed and
        peers see this device does not hold it; a new version from a peer is needed (and
        refused) again. Nothing on disk is touched. Recorded with the next ``flush`` (the
        pull round ends with one). ``flags``: the local flags to keep it with (selective
        sync adds ``FLAG_NOT_SELECTED``)."""
        kept = fi.with_(sequence=0, invalid=True).as_local(local_flags=flags)
        with self._lock:
            self._pending.append(kept)

    def note_applying(self, applying: Sequence[tuple[FileInfo, FileStat | None]]) -> None:
        """Before renames put these into place: note the records they will leave
        (``IndexStore.note_applying``; adopted at the next start if a kill comes first)."""
        self.note_applying_soon(applying).result()

    def note_applying_soon(
        self, applying: Sequence[tuple[FileInfo, FileStat | None]]
    ) -> Future[None]:
        """``note_applying`` without waiting: the renames must wait for the future."""
        return self.note_records_soon([self.as_recorded(fi, st) for fi, st in applying])

    def note_records_soon(self, records: Sequence[LocalFileInfo]) -> Future[None]:
        """``note_applying_soon`` of records made by ``as_recorded``."""
        return self._settings.index.note_applying_soon(self._settings.folder, records)

    def mark_gained(self, *dirs: str) -> None:
        """Entries went into ``dirs`` (renames into place, new directories or symlinks):
        fsync them at the next flush."""
        with self._lock:
            self._gained.update(dirs)

    def mark_lost(self, *dirs: str) -> None:
        """Entries left ``dirs`` (rename sources, deletions): fsync them at the next
        flush, after the directories that gained entries."""
        with self._lock:
            self._lost.update(dirs)

    def remember_blocks(self, fi: FileInfo) -> None:
        """``fi``'s blocks are at its name now, though the block map does not know yet."""
        with self._lock:
            self._remember_locked(fi)

    def _remember_locked(self, fi: FileInfo) -> None:
        blocks = self.memo.blocks
        if len(blocks) < RECENT_BLOCKS_MAX:
            for b in fi.blocks:
                blocks[b.hash] = (fi.name, b.offset, b.size)

    # ---- batches -----------------------------------------------------------------------
    def flush(self) -> int:
        """Make what was applied durable, then record it: fsync the directories renames
        went into (one fsync per directory, not per file), then write the deferred records
        in one transaction. Returns the highest new local sequence (0 if nothing was
        pending); ``take_flushed_sequence`` also sees it. Call from a worker thread. The
        folder flushes before any scan can run, so the scanner always sees what the
        puller wrote as already known; batches flush as soon as they are applied (a
        daemon killed before that adopts them at its next start, see ``adopt_applied``)."""
        return self.store_applied(self.sync_applied())

    def sync_applied(self) -> list[LocalFileInfo]:
        """``flush``'s first half: take the pending records and fsync the directories
        whose entries they changed. Returns the records for ``store_applied``."""
        with self._lock:  # records and their directories, as of one moment
            batch, self._pending = self._pending, []
            self.memo = PageMemo()
        self._sync_dirs()
        return batch

    def _sync_dirs(self) -> None:
        """fsync the directories that gained entries, then those that lost some (a
        directory in both is a loser: it waits for every gainer)."""
        with self._lock:
            lost, self._lost = self._lost, set()
            gained, self._gained = self._gained - lost, set()
        fs = self._settings.fs
        for phase in (gained, lost):
            for d, exc in fs.fsync_dirs(sorted(phase)):  # one gone away is skipped
                log.warning("could not make the changes in %r durable: %s", d, exc)

    def store_applied(self, batch: list[LocalFileInfo]) -> int:
        """``flush``'s second half: write ``batch`` in one transaction. A batch of small
        files does this after leaving the write gate, so the next batch's file creations
        need not wait for the index."""
        if not batch:
            return 0
        stored = self._settings.index.update_local(self._settings.folder, batch, applied=True)
        sequence = max(f.sequence for f in stored)
        with self._lock:
            self._flushed_sequence = max(self._flushed_sequence, sequence)
        return sequence

    def take_flushed_sequence(self) -> int:
        """The highest sequence flushed since the last call (0 if none)."""
        with self._lock:
            sequence, self._flushed_sequence = self._flushed_sequence, 0
        return sequence

    def adopt_applied(self, check_unchanged: Callable[[str, LocalFileInfo], object]) -> int:
        """At start: store the records of files an earlier run renamed into place but was
        killed before recording (``IndexStore.note_applying``), for each file still exactly
        as renamed in (and each rename source still gone: ``check_unchanged``, the
        never-clobber check, raises ItemSkipped otherwise); forget the rest. Returns how
        many were adopted. Call from a worker thread before the first scan."""
        index, folder = self._settings.index, self._settings.folder
        adopted = []
        for noted in index.applying(folder):
            try:
                check_unchanged(noted.name, noted)
            except ItemSkipped:
                continue
            adopted.append(noted)
        if adopted:
            index.update_local(folder, adopted, applied=True)
        index.clear_applying(folder)
        return len(adopted)
