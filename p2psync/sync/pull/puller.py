"""The puller: the only code that writes user files. It joins the pull stages of one
folder; ``PullRound`` (round.py) feeds it pages of needed items.

A file goes plan → fetch → assemble and verify → commit → record (see the package
docstring). One big file takes two thread hops and a fetch between them: the first checks
(never clobber), claims its space, creates the temp file and copies every block found on
this device (``_prepare_file``); peers fill in the rest while it is written; the second
seals, fsyncs, notes the record, re-checks and renames (``_finish_file``). Small files go
through the same stages in batches (``pull_batch``); local renames and items without data
(deletions, directories, symlinks) take one hop each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import trio

from ...errors import UnsafePathError
from ...fs.base import FileSystem, WriteHandle
from ...fs.internal import is_internal, temp_name
from ...index.store import IndexStore
from ...protocol.fileinfo import BlockInfo, FileInfo, FileType, LocalFileInfo
from ...scanner.ignore import Ignore
from ...scanner.scan import NOT_SELECTED
from ..progress import PullProgress
from ..versioner import Versioner
from .assemble import Assembler
from .base import (
    INTERNAL_NAME,
    ItemSkipped,
    PullSettings,
    PullStats,
    SourcesFor,
    SourcesForMany,
    WaitForSpace,
    skipped_for,
)
from .commit import Committer
from .entries import Entries
from .fetch import LocalBlocks, PeerFetch
from .local_renames import LocalRenames
from .record import Recorder
from .small_files import BatchResult, SmallFiles
from .tunings import DEFAULT_TUNINGS, PullTunings


class Puller:
    def __init__(
        self,
        *,
        folder: str,
        fs: FileSystem,
        index: IndexStore,
        versioner: Versioner,
        limiter: trio.CapacityLimiter,
        sources_for: SourcesFor,
        sources_for_many: SourcesForMany | None = None,
        ignore_permissions: bool = False,
        max_conflicts: int = 10,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
        defer_records: bool = False,
        tunings: PullTunings = DEFAULT_TUNINGS,
        ignore: Callable[[], Ignore] = Ignore,
    ) -> None:
        """``defer_records``: records wait for ``flush`` (one transaction per batch)
        instead of one transaction per item; a folder's puller defers."""
        settings = PullSettings(
            folder=folder,
            fs=fs,
            index=index,
            versioner=versioner,
            limiter=limiter,
            ignore_permissions=ignore_permissions,
            max_conflicts=max_conflicts,
            clock=clock,
            tunings=tunings,
            ignore=ignore,
        )
        self.settings = settings
        self.stats = PullStats()
        self.progress = PullProgress()
        self.recorder = Recorder(settings, defer=defer_records)
        self.commit = Committer(settings, self.recorder, self.stats)
        self.assemble = Assembler(settings, self.commit)
        self.local = LocalBlocks(settings, self.recorder, self.stats, self.progress)
        self.peers = PeerFetch(settings, self.stats, self.progress, sources_for, sources_for_many)
        self.entries = Entries(settings, self.commit, self.recorder)
        self.renames = LocalRenames(settings, self.commit, self.recorder, self.stats)
        self.small_files = SmallFiles(
            settings,
            local=self.local,
            peers=self.peers,
            assemble=self.assemble,
            commit=self.commit,
            recorder=self.recorder,
            stats=self.stats,
        )

    # ---- settings that follow the folder's config ------------------------------------
    @property
    def folder(self) -> str:
        return self.settings.folder

    @property
    def tunings(self) -> PullTunings:
        return self.settings.tunings

    @property
    def defer_records(self) -> bool:
        return self.recorder.defer

    @property
    def versioner(self) -> Versioner:
        return self.settings.versioner

    @versioner.setter
    def versioner(self, versioner: Versioner) -> None:
        self.settings.versioner = versioner

    @property
    def ignore_permissions(self) -> bool:
        return self.settings.ignore_permissions

    @ignore_permissions.setter
    def ignore_permissions(self, ignore: bool) -> None:
        self.settings.ignore_permissions = ignore

    @property
    def max_conflicts(self) -> int:
        return self.settings.max_conflicts

    @max_conflicts.setter
    def max_conflicts(self, max_conflicts: int) -> None:
        self.settings.max_conflicts = max_conflicts

    # ---- what the folder drains after a round ----------------------------------------
    @property
    def created(self) -> list[str]:
        """Names the puller created that the scanner must pick up (conflict copies)."""
        return self.commit.created

    @created.setter
    def created(self, names: list[str]) -> None:
        self.commit.created = names

    @property
    def conflicts_made(self) -> list[tuple[str, str, int]]:
        """(name, conflict copy, short ID of the device whose change won)."""
        return self.commit.conflicts_made

    @conflicts_made.setter
    def conflicts_made(self, made: list[tuple[str, str, int]]) -> None:
        self.commit.conflicts_made = made

    # ---- entry points ----------------------------------------------------------------
    async def pull_item(self, fi: FileInfo) -> None:
        """Make the local copy of ``fi.name`` match ``fi`` (the global version), or raise
        ItemSkipped saying why not."""
        if is_internal(fi.name):
            raise ItemSkipped(INTERNAL_NAME, kept=True)
        try:
            if fi.deleted or fi.type in (FileType.DIRECTORY, FileType.SYMLINK):
                await self.settings.in_thread(self.entries.apply, fi)
            else:
                await self._pull_file(fi)
        except (OSError, UnsafePathError) as exc:
            raise skipped_for(exc, fi.name) from exc
        self.stats.items_done += 1

    async def pull_batch(
        self, files: Sequence[FileInfo], *, written: Callable[[], None] | None = None
    ) -> BatchResult:
        """Pull small files (``plan.is_small_file``) as one batch (small_files.py)."""
        return await self.small_files.pull(files, written=written)

    async def rename_into(self, fi: FileInfo, gone: FileInfo) -> bool:
        """Apply "``gone`` deleted, ``fi`` created with the same content" as a local rename.

        Returns False (nothing touched) when that is not safe: the source changed since
        the scan, its content differs, or something already occupies the target. The
        caller then pulls ``fi`` the normal way (which still copies blocks locally).
        """
        (done,) = await self.rename_many([(fi, gone)])
        return done

    async def rename_many(self, pairs: Sequence[tuple[FileInfo, FileInfo]]) -> list[bool]:
        """``rename_into`` for many (new, gone) pairs in one thread hop; whether each was
        applied (local_renames.py)."""
        return await self.settings.in_thread(self.renames.apply, pairs)

    def keep_not_synced(self, fi: FileInfo) -> None:
        """See ``Recorder.keep_not_synced``."""
        self.recorder.keep_not_synced(fi)

    def keep_not_selected(self, fi: FileInfo) -> None:
        """Keep ``fi`` as left out by selective sync (``Recorder.keep_not_synced``)."""
        self.recorder.keep_not_synced(fi, NOT_SELECTED)

    def flush(self) -> int:
        """See ``Recorder.flush``. Call from a worker thread."""
        return self.recorder.flush()

    def flush_gated(self) -> int:
        """``flush`` outside a batch's write step (see ``Committer.write_gate``)."""
        with self.commit.write_gate:
            return self.recorder.flush()

    def take_flushed_sequence(self) -> int:
        """The highest sequence flushed since the last call (0 if none)."""
        return self.recorder.take_flushed_sequence()

    def adopt_applied(self) -> int:
        """See ``Recorder.adopt_applied``. Call from a worker thread before the first scan."""
        return self.recorder.adopt_applied(self.commit.check_unchanged)

    # ---- one file --------------------------------------------------------------------
    async def _pull_file(self, fi: FileInfo) -> None:
        space, in_thread = self.commit.space, self.settings.in_thread
        self.progress.begin(fi.name, fi.size)
        applied = False
        try:
            while True:
                try:
                    prepared = await in_thread(self._prepare_file, fi)
                    break
                except WaitForSpace:
                    await space.wait()
            if prepared is None:
                applied = True
                return  # metadata-only change, already applied
            cur, tmp, handle, missing, claimed = prepared
            try:
                if missing:
                    await self.peers.fetch_file(handle, fi, missing)
                await in_thread(self._finish_file, fi, cur, tmp, handle)
                applied = True
            except BaseException:
                await in_thread(handle.close)
                raise
            finally:
                space.release(claimed)
        finally:
            self.progress.end(fi.name, applied=applied)

    def _prepare_file(
        self, fi: FileInfo
    ) -> tuple[LocalFileInfo | None, str, WriteHandle, list[BlockInfo], int] | None:
        """Check, then build as much of the temp file as local blocks allow (one thread hop)."""
        commit, assemble = self.commit, self.assemble
        cur = self.settings.index.get_local(self.settings.folder, fi.name)
        checked = commit.check_file(fi, cur)
        if checked is None:
            return None  # only metadata changed, now applied
        cur, st = checked
        if st is not None and st.type == FileType.DIRECTORY:
            commit.remove_replaced_directory(fi.name)
            cur = None
        tmp = temp_name(fi.name)
        partial = commit.stat_or_none(tmp)  # an earlier attempt's temp file holds its space
        held = partial.size if partial is not None and partial.type == FileType.FILE else 0
        claimed = commit.space.claim(max(0, fi.size - held))
        try:
            commit.make_parent(fi.name)
            handle = assemble.open_temp(tmp)
        except BaseException:
            commit.space.give_back(claimed)
            raise
        try:
            assemble.prepare_big(handle, fi)
            missing = self.local.fill(handle, fi, cur)
            assemble.preallocate(handle, fi)
        except BaseException:
            handle.close()
            commit.space.give_back(claimed)
            raise
        return cur, tmp, handle, missing, claimed

    def _finish_file(
        self, fi: FileInfo, cur: LocalFileInfo | None, tmp: str, handle: WriteHandle
    ) -> None:
        """Size, permissions, mtime and fsync through the open handle, then commit."""
        try:
            self.assemble.seal(fi, handle)
            handle.fsync()
            st = handle.stat()
        finally:
            handle.close()
        self.recorder.note_applying([(fi, st)])
        self.commit.commit_file(fi, cur, tmp, st)
