"""The folder walk: every entry under a directory, in index order, one directory in memory.

Order matters: the scanner merge-joins this stream against the index's entries sorted
by name (code-point order, which is UTF-8 byte order and SQLite's BINARY collation).
A plain depth-first walk is not in that order (``a.txt`` < ``a/b`` because ``.`` <
``/``), so each directory listing is sorted with a subdirectory's contents keyed at
``name + "/"``; the walk descends when that key comes up.

Entries whose names cannot be synced safely (not UTF-8, not NFC, failing
``validate_name``) are reported as problems and skipped, never renamed or mangled.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from ..errors import UnsafePathError
from ..fs.base import FileStat, FileSystem
from ..fs.internal import is_internal_entry, is_own_temp_base
from ..protocol.fileinfo import FileType
from ..protocol.names import is_valid_name, validate_name

# Characters validate_name may reject in a base name; lone surrogates stand for bytes
# that were not valid UTF-8 (os.fsdecode's surrogateescape).
_SUSPECT = re.compile("[\x00-\x1f\\\\\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONG_NAME_CHARS = 1024  # below this, a name cannot exceed MAX_NAME_BYTES of UTF-8


class IgnoreMatcher(Protocol):
    """What the scanner needs from ignore patterns (scanner.ignore.Ignore fits)."""

    def is_ignored(self, name: str) -> bool: ...

    def should_skip_dir(self, name: str) -> bool:
        """True if nothing below ignored directory ``name`` can be un-ignored."""
        ...


class ScanProblem(NamedTuple):
    """An entry the scan skipped, and why (shown to the user, never fatal)."""

    name: str  # as found on disk; may hold lone surrogates for undecodable bytes
    reason: str


@dataclass
class TempsSeen:
    """The puller's temp files a full walk passed (name, mtime in ns), so the stale-temp
    cleaner need not walk the folder again; ``complete`` is False once more than ``cap``
    were seen (then the cleaner walks). Like Syncthing's, the walk does not enter
    directories it skips (ignored or unreadable), where the puller writes nothing."""

    names: list[tuple[str, int]] = field(default_factory=list)
    complete: bool = True
    cap: int = 10_000

    def add(self, name: str, mtime_ns: int) -> None:
        if len(self.names) < self.cap:
            self.names.append((name, mtime_ns))
        else:
            self.complete = False


class DiskItem(NamedTuple):
    name: str  # validated, NFC
    stat: FileStat
    ignored: bool


class Walker:
    """Walks one folder; collects problems and the directories it could not look into."""

    def __init__(
        self,
        fs: FileSystem,
        ignore: IgnoreMatcher | None,
        problems: list[ScanProblem],
        temps: TempsSeen | None = None,
    ) -> None:
        self._fs = fs
        self._ignore = ignore
        self._problems = problems
        self._temps = temps
        # Ignored directories not descended into: every index entry below is ignored.
        self.ignored_dirs: set[str] = set()
        # Entries we could not read: their index entries (and those below) stay untouched.
        self.unreadable: set[str] = set()

    def walk(self, start: str = "") -> Iterator[DiskItem]:
        """``start`` itself (unless it is the root ``""``) and everything below it, in
        name order. ``start`` must be a validated name as spelt on disk."""
        if start == "":
            yield from self._walk_below("")
            return
        try:
            st = self._fs.lstat(start)
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            return  # gone, or now behind a file or symlink: not in the folder any more
        except OSError as exc:
            self._unreadable(start, f"cannot stat: {exc.strerror or exc}")
            return
        parent, _, base = start.rpartition("/")
        if is_internal_entry(parent, base):
            return
        if st.type is None:
            self._unreadable(start, "unsupported file type (FIFO, socket or device)")
            return
        ignored = self._ignore is not None and self._ignore.is_ignored(start)
        yield DiskItem(start, st, ignored)
        if st.type == FileType.DIRECTORY:
            if ignored and self._ignore is not None and self._ignore.should_skip_dir(start):
                self.ignored_dirs.add(start)
            else:
                yield from self._walk_below(start)

    def _walk_below(self, dirname: str) -> Iterator[DiskItem]:
        stack = [iter(self._list(dirname))]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
            elif type(entry[1]) is str:  # a subdirectory's turn: descend
                stack.append(iter(self._list(entry[1])))
            else:
                yield entry[1]  # type: ignore[misc]

    def _list(self, dirname: str) -> list[tuple[str, DiskItem | str]]:
        """One directory's entries and subdirectory markers, sorted in index order."""
        try:
            entries = self._fs.scandir(dirname)
        except (OSError, UnsafePathError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._unreadable(dirname, f"cannot list directory: {reason}")
            return []
        prefix = dirname + "/" if dirname else ""
        at_root = not dirname
        ignore = self._ignore
        items: list[tuple[str, DiskItem | str]] = []
        temps = self._temps
        for entry in entries:
            base = entry.name
            if base[:1] == "." and is_internal_entry(dirname, base):
                if temps is not None and entry.stat.type == FileType.FILE:
                    if is_own_temp_base(base):
                        temps.add(prefix + base, entry.stat.mtime_ns)
                continue
            name = prefix + base
            st = entry.stat
            if (
                _SUSPECT.search(base)
                or (at_root and base[1:2] == ":")
                or (not base.isascii() and not unicodedata.is_normalized("NFC", base))
                or len(name) > _LONG_NAME_CHARS
            ):
                checked = self._checked_name(name, st)
                if checked is None:
                    continue
                name = checked
            if st.type is None:
                self._unreadable(name, "unsupported file type (FIFO, socket or device)")
                continue
            ignored = ignore is not None and ignore.is_ignored(name)
            items.append((name, DiskItem(name, st, ignored)))
            if st.type == FileType.DIRECTORY:
                if ignored and ignore is not None and ignore.should_skip_dir(name):
                    self.ignored_dirs.add(name)
                else:
                    items.append((name + "/", name))
        items.sort(key=_first)
        return items

    def _checked_name(self, name: str, st: FileStat) -> str | None:
        """The name to record for a suspicious entry, or None (reported) to skip it."""
        if _SURROGATE.search(name):
            raw = os.fsencode(name)
            self._problems.append(ScanProblem(name, f"name is not valid UTF-8: {raw!r}"))
            return None
        if not unicodedata.is_normalized("NFC", name):
            nfc = unicodedata.normalize("NFC", name)
            # A normalisation-insensitive filesystem (macOS) serves the NFC spelling too;
            # accept it when it reaches the very same entry, else never guess.
            if is_valid_name(nfc) and st.inode and self._same_inode(nfc, st.inode):
                return nfc
            self._problems.append(
                ScanProblem(name, f"name is not in Unicode NFC (would sync as {nfc!r})")
            )
            return None
        try:
            return validate_name(name)
        except UnsafePathError as exc:
            self._problems.append(ScanProblem(name, str(exc)))
            return None

    def _same_inode(self, name: str, inode: int) -> bool:
        try:
            return self._fs.lstat(name).inode == inode
        except (OSError, UnsafePathError):
            return False

    def _unreadable(self, name: str, reason: str) -> None:
        self.unreadable.add(name)
        self._problems.append(ScanProblem(name or ".", reason))


def is_at_or_below(name: str, dirs: set[str]) -> bool:
    """True if ``name`` or one of its parent directories is in ``dirs`` (``""`` = root)."""
    if not dirs:
        return False
    if "" in dirs or name in dirs:
        return True
    i = name.find("/")
    while i != -1:
        if name[:i] in dirs:
            return True
        i = name.find("/", i + 1)
    return False


def _first(item: tuple[str, DiskItem | str]) -> str:
    return item[0]
