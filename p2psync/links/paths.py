"""Resolve a link's names inside its folder without ever leaving it. Blocking I/O.

Every name is checked as a whole (``validate_name``: no ``..``, no absolute path, no NUL
or backslash), then each of its prefixes against p2psync's own names and the folder's
current ignore patterns (so a name ignored or made internal after the link was created
is refused too), then opened one component at a time relative to its parent's descriptor
with ``O_NOFOLLOW``: a symlink anywhere on the way is refused, and a directory swapped
for a symlink between the check and the open cannot lead outside either.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import NotFoundError, UnsafePathError
from ..fs.internal import fold, is_internal
from ..protocol.names import validate_name
from ..scanner.ignore import Ignore

# Syncthing's own names, kept out of links too (a folder shared with Syncthing has them)
SYNCTHING_NAMES = frozenset({".stfolder", ".stversions", ".stignore", ".stglobalignore"})
READ_SIZE = 256 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ANY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class FileChangedError(Exception):
    """The file changed while it was being sent: the response is aborted."""


@dataclass(frozen=True)
class Entry:
    name: str  # base name
    is_dir: bool
    size: int
    mtime: float


@dataclass(frozen=True)
class Version:
    """What identifies one version of an open file: any write changes mtime and ctime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int

    @classmethod
    def of(cls, st: os.stat_result) -> Version:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)

    def same_content(self, now: Version) -> bool:
        """True if ``now`` (a later stat of the same descriptor) holds the same bytes.
        Unlinking the file (an atomic replace of its name) changes its ctime but not its
        content: the old version is still sent whole."""
        if (self.dev, self.ino, self.size, self.mtime_ns) != (
            now.dev,
            now.ino,
            now.size,
            now.mtime_ns,
        ):
            return False
        return now.ctime_ns == self.ctime_ns or now.nlink < self.nlink


def join(base: str, rest: str) -> str:
    return f"{base}/{rest}" if base and rest else base or rest


def hidden(name: str, ignore: Ignore) -> bool:
    """True if ``name`` or a directory above it is internal or ignored."""
    parts = name.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if is_internal(prefix) or ignore.is_ignored(prefix):
            return True
        if i == 1 and fold(parts[0]) in SYNCTHING_NAMES:
            return True
    return False


def check_name(name: str, ignore: Ignore) -> None:
    """UnsafePathError for a name that is malformed, internal or ignored ("" = root)."""
    if name == "":
        return
    validate_name(name)
    if hidden(name, ignore):
        raise UnsafePathError(f"{name!r} is not shared")


def open_root(root: Path) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise NotFoundError(f"folder unavailable: {exc.strerror}") from exc


def open_inside(root_fd: int, name: str) -> int:
    """A descriptor of ``name`` (a checked name, "" = root), opened component by component
    without following any symlink. NotFoundError if absent, UnsafePathError for a symlink
    or anything but a regular file or directory."""
    if name == "":
        return os.dup(root_fd)
    parts = name.split("/")
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                child = os.open(part, _ANY_FLAGS if last else _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise NotFoundError(f"{name!r} does not exist") from None
            except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file on the way
                raise UnsafePathError(f"{name!r} cannot be shared: {exc.strerror}") from None
            os.close(fd)
            fd = child
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UnsafePathError(f"{name!r} is neither a file nor a directory")
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def list_dir(dir_fd: int, name: str, ignore: Ignore) -> list[Entry]:
    """The shareable entries of directory ``name`` (symlinks, specials, internal and
    ignored names left out), directories first, then by name."""
    entries: list[Entry] = []
    with os.scandir(dir_fd) as it:
        for item in it:
            child = join(name, item.name)
            try:
                validate_name(child)
            except UnsafePathError:
                continue
            if hidden(child, ignore) or item.is_symlink():
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                is_d = stat.S_ISDIR(st.st_mode)
                entries.append(Entry(item.name, is_d, 0 if is_d else st.st_size, st.st_mtime))
    entries.sort(key=lambda e: (not e.is_dir, e.name))
    return entries


def walk_files(root_fd: int, name: str, ignore: Ignore) -> Iterator[tuple[str, bool]]:
    """(folder-relative name, is_dir) for everything shareable below directory ``name``,
    parents before children."""
    fd = open_inside(root_fd, name)
    try:
        entries = list_dir(fd, name, ignore)
    finally:
        os.close(fd)
    for entry in entries:
        child = join(name, entry.name)
        yield child, entry.is_dir
        if entry.is_dir:
            try:
                yield from walk_files(root_fd, child, ignore)
            except (NotFoundError, UnsafePathError):
                continue  # removed or swapped for a symlink meanwhile: left out


def read_consistent(fd: int, start: Version, *, chunk: int = READ_SIZE) -> Iterator[bytes]:
    """The file's bytes, checked against ``start`` after every chunk and at the end:
    FileChangedError as soon as it differs (a write, a truncation, an append)."""
    offset = 0
    while offset < start.size:
        data = os.pread(fd, min(chunk, start.size - offset), offset)
        if not data or not start.same_content(Version.of(os.fstat(fd))):
            raise FileChangedError("the file changed while it was being sent")
        offset += len(data)
        yield data
    if not start.same_content(Version.of(os.fstat(fd))):
        raise FileChangedError("the file changed while it was being sent")
