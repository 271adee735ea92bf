"""A fetch policy: needed files whose content is a needed deletion, applied as local renames.

When a peer renamed a file, this device needs "``gone`` deleted" and "``fi`` created with
the same content". Renaming the local ``gone`` to ``fi`` moves no data. Each pair is
checked first (never clobber: the source must still be what the index says, the target
must be free); the records the renames will leave are then noted in the index
(``Recorder.note_applying``), and only then are the files renamed, so a daemon killed
between a rename and its record adopts the result at its next start instead of taking it
for a local edit.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import FilesystemError
from ...fs.base import FileStat
from ...fs.internal import is_internal
from ...protocol.fileinfo import FileInfo
from .base import ItemSkipped, PullSettings, PullStats, same_blocks
from .commit import Committer
from .record import Recorder


class LocalRenames:
    def __init__(
        self, settings: PullSettings, commit: Committer, recorder: Recorder, stats: PullStats
    ) -> None:
        self._settings = settings
        self._commit = commit
        self._recorder = recorder
        self._stats = stats

    def apply(self, pairs: Sequence[tuple[FileInfo, FileInfo]]) -> list[bool]:
        """Blocking, one worker-thread job: rename each (new, gone) pair that is safe to;
        whether each was applied (False: nothing touched, pull ``new`` the normal way)."""
        done = [False] * len(pairs)
        with self._settings.fs.cached_dirs():
            ready: list[tuple[int, FileInfo, FileInfo, FileStat]] = []
            for i, (fi, gone) in enumerate(pairs):
                if is_internal(fi.name) or is_internal(gone.name):
                    continue
                try:
                    st = self._source_if_safe(fi, gone)
                except (ItemSkipped, OSError, FilesystemError):
                    continue
                if st is not None:
                    ready.append((i, fi, gone, st))
            if not ready:
                return done
            noted: list[tuple[FileInfo, FileStat | None]] = []
            for _, fi, gone, st in ready:
                noted += [(fi, self._after_rename(fi, st)), (gone, None)]
            self._recorder.note_applying(noted)
            for i, fi, gone, _ in ready:
                try:
                    done[i] = self._rename(fi, gone)
                except (OSError, FilesystemError):
                    done[i] = False
        return done

    def _source_if_safe(self, fi: FileInfo, gone: FileInfo) -> FileStat | None:
        """The source's stat if renaming ``gone`` to ``fi`` is safe, else None."""
        index, folder = self._settings.index, self._settings.folder
        cur_src = index.get_local(folder, gone.name)
        if cur_src is None or cur_src.deleted or not cur_src.is_file:
            return None
        if not same_blocks(cur_src, fi):
            return None
        st = self._commit.check_unchanged(gone.name, cur_src)
        cur = index.get_local(folder, fi.name)
        if (cur is not None and not cur.deleted) or self._commit.stat_or_none(fi.name) is not None:
            return None
        return st

    def _after_rename(self, fi: FileInfo, st: FileStat) -> FileStat:
        """What ``lstat(fi.name)`` will say once the source is renamed and its metadata set."""
        permissions = st.permissions
        if self._settings.keeps_permissions(fi):
            permissions = fi.permissions & 0o777
        return st._replace(mtime_ns=fi.modified_ns, permissions=permissions)

    def _rename(self, fi: FileInfo, gone: FileInfo) -> bool:
        fs, commit, recorder = self._settings.fs, self._commit, self._recorder
        if commit.stat_or_none(fi.name) is not None:  # taken since the check
            return False
        commit.make_parent(fi.name)
        # Announce the new place of these blocks before moving them, so a parallel local
        # copy that misses the old place finds the new one (see LocalBlocks.find).
        recorder.remember_blocks(fi)
        fs.rename(gone.name, fi.name)
        if self._settings.keeps_permissions(fi):
            fs.chmod(fi.name, fi.permissions & 0o777)
        fs.set_mtime(fi.name, fi.modified_ns)
        recorder.mark_gained(fi.name.rpartition("/")[0])
        recorder.mark_lost(gone.name.rpartition("/")[0])
        recorder.record(fi, fs.lstat(fi.name))
        recorder.record(gone, None)
        self._stats.renames += 1
        return True
