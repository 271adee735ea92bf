"""Items without data — deletions, directories, symlinks: checked and committed in one
worker-thread job each, through the commit stage's never-clobber check."""

from __future__ import annotations

import errno

from ...fs.base import FileSystem
from ...fs.internal import is_own_temp_base, temp_name
from ...protocol.fileinfo import FileInfo, FileType, LocalFileInfo
from .base import ItemSkipped, PullSettings
from .commit import Committer
from .record import Recorder


class Entries:
    def __init__(self, settings: PullSettings, commit: Committer, recorder: Recorder) -> None:
        self._settings = settings
        self._commit = commit
        self._recorder = recorder

    def apply(self, fi: FileInfo) -> None:
        """Apply the deletion, directory or symlink ``fi`` (blocking)."""
        cur = self._settings.index.get_local(self._settings.folder, fi.name)
        if fi.deleted:
            self._delete(fi, cur)
        elif fi.type == FileType.DIRECTORY:
            self._directory(fi, cur)
        else:
            self._symlink(fi, cur)

    def _delete(self, fi: FileInfo, cur: LocalFileInfo | None) -> None:
        fs = self._settings.fs
        st = self._commit.check_unchanged(fi.name, cur)
        if st is not None:
            if st.type == FileType.DIRECTORY:
                self._remove_directory(fi.name)
            elif st.type == FileType.FILE:
                self._settings.versioner.archive(fi.name)
                try:
                    fs.remove(fi.name)
                except FileNotFoundError:
                    pass  # the versioner moved it away
            else:
                fs.remove(fi.name)
            self._recorder.mark_lost(fi.name.rpartition("/")[0])  # durable before recorded
        self._recorder.record(fi, None)

    def _remove_directory(self, name: str) -> None:
        """rmdir ``name``. What may go with it goes first, as in Syncthing: partial temp
        files of ours (a pull that failed there, kept for resuming: never user data) and
        what the user's ``(?d)`` patterns say may be deleted. Anything else keeps it."""
        fs = self._settings.fs
        try:
            fs.rmdir(name)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            blocked = exc
        ignore = self._settings.ignore()
        removable = []
        for entry in fs.scandir(name):
            child = f"{name}/{entry.name}"
            ours = entry.stat.type == FileType.FILE and is_own_temp_base(entry.name)
            if not ours and not ignore.is_deletable(child):
                raise ItemSkipped(
                    "directory not empty (holds unsynced or ignored items)"
                ) from blocked
            removable.append((child, entry.stat.type))
        for child, kind in removable:
            if kind == FileType.DIRECTORY:
                _remove_tree(fs, child)
            else:
                fs.remove(child)
        fs.rmdir(name)

    def _directory(self, fi: FileInfo, cur: LocalFileInfo | None) -> None:
        fs, commit = self._settings.fs, self._commit
        ignore_permissions = self._settings.ignore_permissions
        # A directory not in the index yet (the parent of files pulled before its own
        # entry arrived, or the user's) simply becomes this entry: it holds no data of its
        # own, and a rescan would give it a local version of its own mode instead.
        st = commit.stat_or_none(fi.name) if cur is None else None
        if cur is not None or (st is not None and st.type != FileType.DIRECTORY):
            st = commit.check_unchanged(fi.name, cur)
        if st is not None and st.type != FileType.DIRECTORY:
            # a file or symlink becomes a directory
            if st.type == FileType.FILE:
                commit.move_old_aside(fi, cur)
            if commit.stat_or_none(fi.name) is not None:
                fs.remove(fi.name)
            st = None
        commit.make_parent(fi.name)
        if st is None:
            fs.mkdir(fi.name, 0o755 if ignore_permissions else (fi.permissions & 0o777) or 0o755)
            self._recorder.mark_gained(fi.name.rpartition("/")[0])
        if self._settings.keeps_permissions(fi):
            fs.chmod(fi.name, (fi.permissions & 0o777) or 0o755)
        self._recorder.record(fi, fs.lstat(fi.name))

    def _symlink(self, fi: FileInfo, cur: LocalFileInfo | None) -> None:
        fs, commit = self._settings.fs, self._commit
        st = commit.check_unchanged(fi.name, cur)
        commit.make_parent(fi.name)
        tmp = temp_name(fi.name)
        if commit.stat_or_none(tmp) is not None:
            fs.remove(tmp)
        fs.symlink(fi.symlink_target, tmp)
        if st is not None:
            if st.type == FileType.DIRECTORY:
                try:
                    commit.remove_replaced_directory(fi.name)
                except ItemSkipped:
                    fs.remove(tmp)
                    raise
            else:
                commit.move_old_aside(fi, cur)
        fs.rename(tmp, fi.name)
        self._recorder.mark_gained(fi.name.rpartition("/")[0])
        try:
            fs.set_mtime(fi.name, fi.modified_ns)
        except OSError:
            pass
        self._recorder.record(fi, fs.lstat(fi.name))


def _remove_tree(fs: FileSystem, name: str) -> None:
    """Remove directory ``name`` and everything below it (never following symlinks)."""
    for entry in fs.scandir(name):
        child = f"{name}/{entry.name}"
        if entry.stat.type == FileType.DIRECTORY:
            _remove_tree(fs, child)
        else:
            fs.remove(child)
    fs.rmdir(name)
