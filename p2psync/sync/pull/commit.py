"""Stage *commit*: a built temp file takes the user's file's place, safely.

- *space*: a file sets its size aside before it is built (``SpaceClaims``), keeping
  ``min_free_bytes`` free next to every file in flight;
- *never clobber*: what is on disk must still be what the index recorded at the last scan
  (``check_unchanged``), checked before building and again just before the rename;
  otherwise the user changed it since and the name is rescanned instead;
- *version or conflict*: the old file goes to the versioner, or to a conflict copy when
  the change applied is concurrent with it (``move_old_aside``);
- *rename*: atomic, into a directory fsynced at the next flush (``Recorder.mark_gained``);
  the temp file was fsynced before (one file alone, or a batch at once under
  ``write_gate``).
"""

from __future__ import annotations

import errno
import logging
import threading

import trio

from ...errors import UnsafePathError
from ...fs.base import FileStat
from ...protocol.fileinfo import FileInfo, FileType, LocalFileInfo
from ...rules import is_conflict
from ...scanner.scan import FLAG_NOT_SYNCED_HERE
from ..plan import (
    conflict_copies_to_remove,
    conflict_copy_name,
    is_conflict_copy,
    metadata_matches,
    split_extension,
)
from .base import (
    DISK_FULL,
    ItemSkipped,
    PullSettings,
    PullStats,
    WaitForSpace,
    same_blocks,
    short_str_of,
)
from .record import Recorder

log = logging.getLogger("p2psync.sync.puller")


class SpaceClaims:
    """Bytes set aside for files being written now: a file's free-space check counts them
    as used, so parallel files cannot together eat into the reserve."""

    def __init__(self, settings: PullSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._claimed = 0
        self._released = trio.Event()

    def claim(self, need: int) -> int:
        """Set ``need`` bytes aside for a file about to be written, keeping
        ``min_free_bytes`` free next to every file in flight; returns ``need`` (for
        ``release``). Raises WaitForSpace if it only fits once the others are done, and
        ItemSkipped(DISK_FULL) if it does not fit at all. Call from a worker thread."""
        free = self._settings.fs.free_space()
        reserve = self._settings.tunings.min_free_bytes
        with self._lock:
            if free - self._claimed >= need + reserve:
                self._claimed += need
                return need
            others = self._claimed
        if others and free >= need + reserve:
            raise WaitForSpace
        raise ItemSkipped(DISK_FULL)

    def give_back(self, claimed: int) -> None:
        """Give back a claim from a worker thread (a waiter looks again within
        ``space_wait_poll``)."""
        with self._lock:
            self._claimed -= claimed

    def release(self, claimed: int) -> None:
        """Give back a claim (the file is written, or failed). Call from the trio thread."""
        if not claimed:
            return
        with self._lock:
            self._claimed -= claimed
        self._released.set()
        self._released = trio.Event()

    async def wait(self) -> None:
        """Until a claim is given back (or ``space_wait_poll`` passed: look again anyway)."""
        with trio.move_on_after(self._settings.tunings.space_wait_poll):
            await self._released.wait()


class Committer:
    def __init__(self, settings: PullSettings, recorder: Recorder, stats: PullStats) -> None:
        self._settings = settings
        self._recorder = recorder
        self._stats = stats
        self.space = SpaceClaims(settings)
        # Batches of small files write and flush one at a time (small_files.py).
        self.write_gate = threading.Lock()
        # Names the puller created that the scanner must pick up (conflict copies).
        # Appended from worker threads; the folder loop drains it.
        self.created: list[str] = []
        # (name, conflict copy, short ID of the device whose change won), for the event.
        self.conflicts_made: list[tuple[str, str, int]] = []

    # ---- the never-clobber check -------------------------------------------------------
    def stat_or_none(self, name: str) -> FileStat | None:
        try:
            return self._settings.fs.lstat(name)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def check_unchanged(self, name: str, cur: LocalFileInfo | None) -> FileStat | None:
        """Raise ItemSkipped(rescan) unless the disk still holds what the index recorded."""
        st = self.stat_or_none(name)
        if cur is None or cur.deleted or cur.local_flags & FLAG_NOT_SYNCED_HERE:
            # (a kept "not synced here" entry was never on disk: like no entry at all)
            if st is not None:
                self._check_case_twin(name)
                raise ItemSkipped("an unscanned local item is in the way; rescanning", rescan=True)
            return None
        if st is None:
            raise ItemSkipped("deleted locally since the last scan; rescanning", rescan=True)
        if st.type != cur.type:
            raise ItemSkipped("changed type locally since the last scan; rescanning", rescan=True)
        if cur.type == FileType.FILE and not metadata_matches(
            cur,
            size=st.size,
            mtime_ns=st.mtime_ns,
            inode=st.inode,
            permissions=st.permissions,
            ignore_perms=self._settings.ignore_permissions or cur.no_permissions,
        ):
            raise ItemSkipped("modified locally since the last scan; rescanning", rescan=True)
        if cur.type == FileType.SYMLINK and st.symlink_target != cur.symlink_target:
            raise ItemSkipped(
                "symlink changed locally since the last scan; rescanning", rescan=True
            )
        return st

    def _check_case_twin(self, name: str) -> None:
        """On a case-insensitive filesystem, ``name`` may find another spelling's file
        (``foo.txt`` for a peer's ``Foo.txt``): that is a conflict to show and retry later
        with backoff, not an unscanned item (a rescan finds nothing new: a busy loop)."""
        fs = self._settings.fs
        if not fs.is_case_insensitive():
            return
        try:
            real = fs.real_name(name)
        except (OSError, UnsafePathError):
            return
        if real != name:
            raise ItemSkipped(
                f"case conflict: {real!r} exists here, and this filesystem does not tell "
                "names apart by case"
            )

    def check_file(
        self, fi: FileInfo, cur: LocalFileInfo | None
    ) -> tuple[LocalFileInfo | None, FileStat | None] | None:
        """The never-clobber check before pulling file ``fi`` over the local entry ``cur``:
        (local entry, what is on disk now), or None when only metadata differs — then it
        has been applied and no data needs to move."""
        st = self.check_unchanged(fi.name, cur)
        if cur is not None and cur.is_file and not cur.deleted and same_blocks(cur, fi):
            self.apply_metadata(fi)
            return None
        return cur, st

    def apply_metadata(self, fi: FileInfo) -> None:
        fs = self._settings.fs
        if self._settings.keeps_permissions(fi):
            fs.chmod(fi.name, fi.permissions & 0o777)
        fs.set_mtime(fi.name, fi.modified_ns)
        self._recorder.record(fi, fs.lstat(fi.name))

    def make_parent(self, name: str) -> None:
        parent = name.rpartition("/")[0]
        known = self._recorder.memo.dirs
        if parent and parent not in known:
            st = self.stat_or_none(parent)
            if st is None:
                self._settings.fs.makedirs(parent)
                # each level may be new: its parent gained an entry
                parts = parent.split("/")
                self._recorder.mark_gained(*("/".join(parts[:i]) for i in range(len(parts))))
            elif st.type != FileType.DIRECTORY:
                raise ItemSkipped(f"parent {parent!r} is not a directory here yet")
            known.add(parent)

    def remove_replaced_directory(self, name: str) -> None:
        """A directory (unchanged since the scan) becomes a file or symlink: remove it once
        its contents have been deleted by the same pull."""
        fs = self._settings.fs
        try:
            fs.rmdir(name)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise ItemSkipped(
                    "a directory is in the way; waiting for its contents to be deleted",
                    retry_soon=True,
                ) from exc
            raise
        self._recorder.mark_lost(name.rpartition("/")[0])

    # ---- the rename --------------------------------------------------------------------
    def commit_file(
        self,
        fi: FileInfo,
        cur: LocalFileInfo | None,
        tmp: str,
        st_tmp: FileStat,
        recorded: LocalFileInfo | None = None,
    ) -> None:
        """Put the built, durable temp file ``tmp`` in place of ``fi.name`` and record it
        (``recorded``: its record, if made already: ``Recorder.record``)."""
        # Re-check: the user may have changed the file while we were fetching.
        if _expects_nothing(cur):  # the rename itself checks, atomically
            try:
                self._settings.fs.rename_new(tmp, fi.name)
            except FileExistsError:
                self._check_case_twin(fi.name)
                raise ItemSkipped(
                    "an unscanned local item is in the way; rescanning", rescan=True
                ) from None
        else:
            st = self.check_unchanged(fi.name, cur)
            if st is not None:
                self.move_old_aside(fi, cur)
            self._settings.fs.rename(tmp, fi.name)
        self._recorder.mark_gained(fi.name.rpartition("/")[0])
        self._recorder.record(fi, st_tmp, recorded)  # a rename keeps inode, mode, mtime

    # ---- versioning or conflict --------------------------------------------------------
    def move_old_aside(self, fi: FileInfo, cur: LocalFileInfo | None) -> None:
        """Hand the current file to the versioner, or keep it as a conflict copy when
        ``fi`` is concurrent with it.

        The copy is named after the device whose content it holds (``cur.modified_by``),
        not the winner as Syncthing does: when several devices lose to the same winner in
        the same second, their copies must not share a name, or one would silently replace
        another. For the same reason a losing conflict copy is itself kept, not dropped.
        """
        if cur is None or cur.deleted or cur.type != FileType.FILE:
            return
        settings = self._settings
        if is_conflict(cur, fi):
            if settings.max_conflicts == 0:
                settings.versioner.archive(fi.name)
                return
            copy = self._unused_name(
                conflict_copy_name(fi.name, settings.clock(), short_str_of(cur.modified_by))
            )
            settings.fs.rename(fi.name, copy)
            self.created.append(copy)
            self.conflicts_made.append((fi.name, copy, fi.modified_by))
            self._stats.conflicts += 1
            log.warning(
                "conflict on %s/%s: kept the local version as %s", settings.folder, fi.name, copy
            )
            if not is_conflict_copy(fi.name):
                self._prune_conflicts(fi.name)
            return
        settings.versioner.archive(fi.name)

    def _unused_name(self, name: str) -> str:
        """``name``, or ``name`` with ``-2``, ``-3``… before the extension if it exists."""
        if self.stat_or_none(name) is None:
            return name
        parent, sep, base = name.rpartition("/")
        stem, ext = split_extension(base)
        for n in range(2, 1000):
            candidate = f"{parent}{sep}{stem}-{n}{ext}"
            if self.stat_or_none(candidate) is None:
                return candidate
        raise ItemSkipped("too many conflict copies with the same name")

    def _prune_conflicts(self, name: str) -> None:
        settings = self._settings
        if settings.max_conflicts < 0:
            return
        parent = name.rpartition("/")[0]
        names = [f"{parent}/{e.name}" if parent else e.name for e in settings.fs.scandir(parent)]
        for old in conflict_copies_to_remove(name, names, settings.max_conflicts):
            settings.versioner.archive(old)
            try:
                settings.fs.remove(old)
            except FileNotFoundError:
                pass


def _expects_nothing(cur: LocalFileInfo | None) -> bool:
    """Whether the index says nothing is on disk under the name (a kept "not synced
    here" entry was never on disk: like no entry at all)."""
    return cur is None or cur.deleted or bool(cur.local_flags & FLAG_NOT_SYNCED_HERE)
