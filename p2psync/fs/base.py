"""The filesystem interface every part of p2psync uses to touch a shared folder.

All names are folder-relative, ``/``-separated and must pass
``protocol.names.validate_name`` (the folder root itself is ``""`` where a directory is
expected). Implementations resolve names against the folder root without ever following
a symlink in any component; a name that fails validation or would pass through a
symlink raises ``UnsafePathError``. Everything else fails the way ``os`` does:
``FileNotFoundError``, ``FileExistsError``, ``NotADirectoryError``, ``IsADirectoryError``,
``OSError(ENOTEMPTY)``, ``PermissionError``. Callers rely on these types, and the contract
tests (tests/fs) hold both implementations to them.

All methods block: call them from a worker thread, never on the trio event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from ..protocol.fileinfo import FileType

ONE_SECOND_NS = 1_000_000_000


class FileStat(NamedTuple):
    """What ``lstat`` says about one directory entry (never following a symlink).

    ``type`` is None for entries p2psync cannot sync (FIFOs, sockets, devices).
    ``size`` is 0 for anything but a regular file. ``permissions`` holds the mode bits
    ``& 0o777``. ``symlink_target`` is set for symlinks only (undecodable bytes appear as
    lone surrogates, like ``os.fsdecode``). A NamedTuple: the scanner builds one per
    entry on every rescan, and tuples are the cheapest immutable record.
    """

    type: FileType | None
    size: int
    mtime_ns: int
    inode: int
    permissions: int
    symlink_target: str = ""


class DirEntry(NamedTuple):
    """One entry of a directory listing: its base name and its lstat.

    ``name`` is exactly what the directory holds: it may be non-NFC or (on the real
    filesystem) contain lone surrogates standing for bytes that are not valid UTF-8.
    """

    name: str
    stat: FileStat


class ReadHandle(Protocol):
    """An open regular file; a context manager that closes it."""

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``; shorter only at end of file."""
        ...

    def stat(self) -> FileStat:
        """The open file's current metadata (fstat)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class WriteHandle(ReadHandle, Protocol):
    """A regular file open for reading and writing."""

    def write_at(self, offset: int, data: bytes) -> None:
        """Write all of ``data`` at ``offset`` (extending the file as needed)."""
        ...

    def truncate(self, size: int) -> None: ...

    def reserve(self, size: int) -> None:
        """Allocate disk space for the first ``size`` bytes (the file grows to at least
        ``size``; existing data is kept). Raises OSError(ENOSPC) at once if the space is not
        there; a filesystem that cannot preallocate just returns."""
        ...

    def fsync(self) -> None:
        """Flush the file's data and metadata to stable storage."""
        ...

    def bypass_cache(self) -> bool:
        """From now on write around the page cache where the system allows it (big temp
        files: ``direct_io.py``); returns whether it does. A write that ends past the
        file's size may then leave zeros up to the next 4 KiB boundary: the caller sets
        the final size with ``truncate``."""
        ...

    def chmod(self, mode: int) -> None:
        """Set the open file's permission bits (no path lookup)."""
        ...

    def set_mtime(self, mtime_ns: int) -> None:
        """Set the open file's modification time (no path lookup)."""
        ...


class FileSystem(Protocol):
    """Operations on one shared folder; see the module docstring for the rules."""

    @property
    def root(self) -> str:
        """A human-readable description of the folder root (for logs)."""
        ...

    @property
    def mtime_granularity_ns(self) -> int:
        """Resolution of stored modification times; 1 if exact, 1e9 for 1-second filesystems."""
        ...

    def lstat(self, name: str) -> FileStat: ...

    def scandir(self, dirname: str) -> list[DirEntry]:
        """The entries of a directory (``""`` = root), unsorted, without ``.``/``..``."""
        ...

    def open_read(self, name: str) -> ReadHandle:
        """Open a regular file for reading; a symlink there is refused (UnsafePathError)."""
        ...

    def open_write(self, name: str, *, exclusive: bool = False, mode: int = 0o600) -> WriteHandle:
        """Open (creating if missing) a regular file read-write, without truncating it.

        ``exclusive`` fails with FileExistsError if the name exists. The puller writes
        its temp files (``fs.internal.temp_name``) this way, then ``rename``s them.
        """
        ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` to ``dst``, replacing ``dst`` if it is a file."""
        ...

    def rename_new(self, src: str, dst: str) -> None:
        """``rename`` only if nothing is at ``dst`` (else FileExistsError, nothing moved):
        atomically where the system can (``fs/noreplace.py``)."""
        ...

    def remove(self, name: str) -> None:
        """Remove a file or symlink (never a directory)."""
        ...

    def rmdir(self, name: str) -> None:
        """Remove an empty directory."""
        ...

    def mkdir(self, name: str, mode: int = 0o755) -> None: ...

    def makedirs(self, name: str, mode: int = 0o755) -> None:
        """Create ``name`` and any missing parents; an existing directory is fine."""
        ...

    def symlink(self, target: str, name: str) -> None:
        """Create symlink ``name`` pointing at ``target`` (stored verbatim, never followed)."""
        ...

    def readlink(self, name: str) -> str: ...

    def chmod(self, name: str, mode: int) -> None:
        """Set permission bits of a file or directory (refuses symlinks: UnsafePathError)."""
        ...

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        """Set the modification time (of the entry itself, even if it is a symlink)."""
        ...

    def fsync_dir(self, dirname: str) -> None:
        """Make earlier renames/creations in ``dirname`` (``""`` = root) durable."""
        ...

    def fsync_files(self, handles: Sequence[WriteHandle]) -> list[OSError | None]:
        """Make every handle's data and metadata durable, together where that is cheaper
        (``durable.py``); the error of each, None where it worked."""
        ...

    def fsync_dirs(self, dirnames: Iterable[str]) -> list[tuple[str, OSError]]:
        """``fsync_dir`` of each, together where that is cheaper; a directory that no
        longer exists is skipped. Returns the directories that failed, with the error."""
        ...

    def is_case_insensitive(self) -> bool:
        """True if names differing only in case refer to the same entry."""
        ...

    def real_name(self, name: str) -> str:
        """``name`` spelt as stored on disk (differs only on a case-insensitive filesystem)."""
        ...

    def free_space(self) -> int:
        """Bytes available to this process on the folder's filesystem."""
        ...

    def cached_dirs(self) -> AbstractContextManager[None]:
        """Within the block, the calling thread may reuse directory lookups across calls
        (a batch of operations on nearby names); no effect on other threads."""
        ...
