"""Whether a folder may work: its root exists and carries our marker (an unmounted disk
must never look like "everything was deleted"), and its local index still describes it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FilesystemError
from ..fs.base import FileSystem
from ..fs.internal import MARKER, is_internal_entry
from ..protocol.fileinfo import FileInfo, FileType
from .folder_lock import FolderLock


@dataclass(frozen=True)
class RootCheck:
    reason: str = ""  # why the folder cannot work now ("": it can)
    marker_lost: bool = False  # the root or marker is missing while the index has files


def check_root(
    root: Path, fs: FileSystem, has_files: Callable[[], bool], lock: FolderLock
) -> RootCheck:
    """Check (blocking) the folder root and marker, creating them for a new folder, and
    hold the folder lock."""
    if not root.is_dir():
        if has_files() or root.exists():
            return RootCheck(f"folder path {root} is missing (unmounted disk?)", True)
        root.mkdir(parents=True)  # a new folder: create it, like ~/Sync on first run
    try:
        fs.lstat(MARKER)
    except FileNotFoundError:
        if has_files():
            return RootCheck(f"folder marker {MARKER} is missing in {root} (unmounted disk?)", True)
        fs.mkdir(MARKER)
    return RootCheck(lock.ensure())


class RootGuard:
    """One folder's root checks over time: whether its local index must be checked
    against the disk again (at start: the folder may have been emptied while stopped;
    and once the marker was seen missing). Blocking methods: run them in a thread."""

    def __init__(
        self,
        root: Path,
        fs: FileSystem,
        *,
        has_files: Callable[[], bool],
        lock: FolderLock,
        local_entries: Callable[[], Iterable[FileInfo]],
    ) -> None:
        self.root = root
        self.fs = fs
        self._has_files = has_files  # whether the index has files of ours
        self._lock = lock
        self._local_entries = local_entries  # this device's index of the folder
        self.recheck_local = True
        self.marker_lost = False

    def check(self) -> RootCheck:
        """``check_root``, remembering a lost marker for the next index check."""
        check = check_root(self.root, self.fs, self._has_files, self._lock)
        if check.marker_lost:
            self.recheck_local = self.marker_lost = True
        return check

    def note_marker_lost(self) -> None:
        """A scan saw the marker gone after this round's check: check the index against
        the disk once it is back, as if ``check`` had seen it."""
        self.recheck_local = self.marker_lost = True

    def local_index_outdated(self) -> str:
        """Why the local index no longer describes the disk, or "" (then, until the
        marker is lost again, it is not checked again)."""
        why = local_index_outdated(self.fs, self._local_entries(), self.marker_lost)
        self.recheck_local = self.marker_lost = False
        return why


def local_index_outdated(fs: FileSystem, local: Iterable[FileInfo], marker_lost: bool) -> str:
    """Why this device's index of the folder (``local``) no longer describes its disk,
    or "".

    Scanning would turn every missing file into a deletion sent to every device
    when the missing files are no decision of the user: a marker that went missing
    and came back (recreated by hand, a disk restored) with any indexed file not on
    disk, or a start with none of the indexed files on disk (emptied or replaced
    while the daemon was stopped). Such a folder starts from the cluster's state.
    A marker back with every file in place (a disk remounted) changes nothing, and
    neither do files that are all gone from their names but on disk under others
    (the folder's one top directory renamed while the daemon was stopped): that is
    the user's rename, which a scan turns into renames on every device."""
    indexed: list[FileInfo] = []
    for fi in local:
        if fi.deleted or fi.invalid or fi.is_directory:
            continue
        indexed.append(fi)
        try:
            fs.lstat(fi.name)
        except (OSError, FilesystemError):
            if marker_lost:
                return f"the folder marker {MARKER} is back but {fi.name!r} is not"
            continue
        if not marker_lost:
            return ""
    if indexed and not marker_lost and not moved_within(fs, indexed):
        return "none of the files in its index are on disk"
    return ""


def moved_within(fs: FileSystem, gone: list[FileInfo]) -> bool:
    """Whether at least half of the ``gone`` files are on disk under other names: a file
    of the same size and modification time (what a rename keeps) found by walking the
    folder. Blocking; runs only when none of the indexed files is at its name."""
    wanted = Counter((fi.size, fi.modified_ns) for fi in gone if fi.is_file)
    need = (sum(wanted.values()) + 1) // 2
    if not need:
        return False
    found = 0
    dirs = [""]
    while dirs:
        parent = dirs.pop()
        try:
            entries = fs.scandir(parent)
        except (OSError, FilesystemError):
            continue
        for entry in entries:
            if is_internal_entry(parent, entry.name):
                continue
            name = f"{parent}/{entry.name}" if parent else entry.name
            st = entry.stat
            if st.type == FileType.DIRECTORY:
                dirs.append(name)
            elif st.type == FileType.FILE and wanted[(st.size, st.mtime_ns)] > 0:
                wanted[(st.size, st.mtime_ns)] -= 1
                found += 1
                if found >= need:
                    return True
    return False
