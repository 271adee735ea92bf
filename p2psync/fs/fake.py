"""An in-memory FileSystem for tests: same contract as BasicFS, plus knobs real disks have.

Options on construction simulate what Linux CI cannot: a case-insensitive,
case-preserving filesystem (like macOS/Windows defaults) and a coarse mtime granularity
(1 s, like HFS+/ext3, or 2 s like FAT). ``read_hook`` lets a test change a file at a
precise moment (e.g. while the scanner hashes it); ``write_hook`` can fail a write (a
full disk mid-file). Thread-safe: the scanner hashes from
worker threads.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ..errors import FilesystemError, UnsafePathError
from ..protocol.fileinfo import FileType
from ..protocol.names import validate_name
from . import durable
from .base import DirEntry, FileStat, WriteHandle


@dataclass(eq=False)
class _Node:
    type: FileType
    inode: int
    mode: int
    mtime_ns: int
    data: bytearray = field(default_factory=bytearray)  # files
    # directories: lookup key (casefolded if case-insensitive) -> (stored name, node)
    children: dict[str, tuple[str, _Node]] = field(default_factory=dict)
    target: str = ""  # symlinks

    def stat(self) -> FileStat:
        return FileStat(
            type=self.type,
            size=len(self.data) if self.type == FileType.FILE else 0,
            mtime_ns=self.mtime_ns,
            inode=self.inode,
            permissions=self.mode & 0o777,
            symlink_target=self.target,
        )


def _missing(name: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory", name)


class _FakeHandle:
    def __init__(self, fs: FakeFS, node: _Node, name: str, writable: bool) -> None:
        self._fs = fs
        self._node: _Node | None = node
        self.name = name
        self._writable = writable

    def _open_node(self) -> _Node:
        if self._node is None:
            raise OSError(errno.EBADF, "Bad file descriptor", self.name)
        return self._node

    def read_at(self, offset: int, size: int) -> bytes:
        node = self._open_node()
        hook = self._fs.read_hook
        if hook is not None:
            hook(self.name, offset)
        with self._fs._lock:
            return bytes(node.data[offset : offset + size])

    def write_at(self, offset: int, data: bytes) -> None:
        node = self._open_node()
        if not self._writable:
            raise OSError(errno.EBADF, "File not open for writing", self.name)
        hook = self._fs.write_hook
        if hook is not None:
            hook(self.name, offset)
        with self._fs._lock:
            if offset > len(node.data):
                node.data.extend(bytes(offset - len(node.data)))
            node.data[offset : offset + len(data)] = data
            node.mtime_ns = self._fs._now()

    def truncate(self, size: int) -> None:
        node = self._open_node()
        with self._fs._lock:
            if size < len(node.data):
                del node.data[size:]
            else:
                node.data.extend(bytes(size - len(node.data)))
            node.mtime_ns = self._fs._now()

    def reserve(self, size: int) -> None:
        node = self._open_node()
        if size > len(node.data) + self._fs.free_bytes:
            raise OSError(errno.ENOSPC, "No space left on device", self.name)
        if size > len(node.data):
            self.truncate(size)

    def fsync(self) -> None:
        self._open_node()

    def bypass_cache(self) -> bool:
        return False  # nothing to bypass in memory

    def chmod(self, mode: int) -> None:
        node = self._open_node()
        with self._fs._lock:
            node.mode = mode & 0o7777

    def set_mtime(self, mtime_ns: int) -> None:
        node = self._open_node()
        with self._fs._lock:
            node.mtime_ns = self._fs._truncate(mtime_ns)

    def stat(self) -> FileStat:
        node = self._open_node()
        with self._fs._lock:
            return node.stat()

    def close(self) -> None:
        self._node = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FakeFS:
    """An in-memory folder.

    ``case_insensitive``: names differing only in case are the same entry; the case used
    at creation is kept (and changed by a case-only rename). ``mtime_granularity_ns``:
    every stored mtime is truncated to a multiple of it. ``clock_ns`` gives the mtime of
    writes. ``free_bytes`` is what ``free_space`` reports.
    """

    def __init__(
        self,
        *,
        case_insensitive: bool = False,
        mtime_granularity_ns: int = 1,
        clock_ns: Callable[[], int] = time.time_ns,
        free_bytes: int = 1 << 40,
    ) -> None:
        self._ci = case_insensitive
        self._granularity = mtime_granularity_ns
        self._clock = clock_ns
        self.free_bytes = free_bytes
        self.read_hook: Callable[[str, int], None] | None = None
        self.write_hook: Callable[[str, int], None] | None = None  # may raise, e.g. ENOSPC
        self._lock = threading.RLock()
        self._next_inode = 1
        self._root = self._new(FileType.DIRECTORY, 0o755)

    def __repr__(self) -> str:
        return f"FakeFS(case_insensitive={self._ci}, mtime_granularity_ns={self._granularity})"

    @property
    def root(self) -> str:
        return "<memory>"

    @property
    def mtime_granularity_ns(self) -> int:
        return self._granularity

    # ------------------------------------------------------------------ internals

    def _now(self) -> int:
        return self._truncate(self._clock())

    def _truncate(self, ns: int) -> int:
        return ns - ns % self._granularity

    def _new(self, ftype: FileType, mode: int) -> _Node:
        self._next_inode += 1
        return _Node(ftype, self._next_inode, mode & 0o7777, self._now())

    def _key(self, base: str) -> str:
        return base.casefold() if self._ci else base

    def _walk_dirs(self, parts: list[str], name: str) -> _Node:
        node = self._root
        for i, part in enumerate(parts):
            entry = node.children.get(self._key(part))
            if entry is None:
                raise _missing(name)
            child = entry[1]
            if child.type == FileType.SYMLINK:
                via = "/".join(parts[: i + 1])
                raise UnsafePathError(f"{name!r} passes through the symlink {via!r}")
            if child.type != FileType.DIRECTORY:
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", name)
            node = child
        return node

    def _parent(self, name: str) -> tuple[_Node, str]:
        validate_name(name)
        *dirs, base = name.split("/")
        return self._walk_dirs(dirs, name), base

    def _dir(self, dirname: str) -> _Node:
        if dirname == "":
            return self._root
        validate_name(dirname)
        return self._walk_dirs(dirname.split("/"), dirname)

    def _get(self, name: str) -> tuple[_Node, str, _Node]:
        """(parent, base, node) of an existing entry."""
        parent, base = self._parent(name)
        entry = parent.children.get(self._key(base))
        if entry is None:
            raise _missing(name)
        return parent, base, entry[1]

    def _add(self, parent: _Node, base: str, node: _Node, name: str) -> None:
        key = self._key(base)
        if key in parent.children:
            raise FileExistsError(errno.EEXIST, "File exists", name)
        parent.children[key] = (base, node)
        parent.mtime_ns = self._now()

    # ------------------------------------------------------------------ reading

    def lstat(self, name: str) -> FileStat:
        with self._lock:
            return self._get(name)[2].stat()

    def scandir(self, dirname: str) -> list[DirEntry]:
        with self._lock:
            return [DirEntry(n, node.stat()) for n, node in self._dir(dirname).children.values()]

    def _open_file(self, name: str, node: _Node, writable: bool) -> _FakeHandle:
        if node.type == FileType.SYMLINK:
            raise UnsafePathError(f"{name!r} is a symlink, not a file")
        if node.type == FileType.DIRECTORY:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
        return _FakeHandle(self, node, name, writable)

    def open_read(self, name: str) -> _FakeHandle:
        with self._lock:
            return self._open_file(name, self._get(name)[2], writable=False)

    def readlink(self, name: str) -> str:
        with self._lock:
            node = self._get(name)[2]
            if node.type != FileType.SYMLINK:
                raise OSError(errno.EINVAL, "Invalid argument", name)
            return node.target

    # ------------------------------------------------------------------ writing

    def open_write(self, name: str, *, exclusive: bool = False, mode: int = 0o600) -> _FakeHandle:
        with self._lock:
            parent, base = self._parent(name)
            entry = parent.children.get(self._key(base))
            if entry is None:
                node = self._new(FileType.FILE, mode)
                self._add(parent, base, node, name)
            elif exclusive:
                raise FileExistsError(errno.EEXIST, "File exists", name)
            else:
                node = entry[1]
            return self._open_file(name, node, writable=True)

    def rename_new(self, src: str, dst: str) -> None:
        validate_name(dst)
        with self._lock:
            parent, base = self._parent(dst)
            if self._key(base) in parent.children:
                raise FileExistsError(errno.EEXIST, "File exists", dst)
            self.rename(src, dst)  # the lock is re-entrant: no one gets in between

    def rename(self, src: str, dst: str) -> None:
        validate_name(src)
        validate_name(dst)
        with self._lock:
            src_parent, src_base, node = self._get(src)
            dst_parent, dst_base = self._parent(dst)
            dst_key = self._key(dst_base)
            existing = dst_parent.children.get(dst_key)
            if existing is not None and existing[1] is node:  # same entry, maybe new case
                dst_parent.children[dst_key] = (dst_base, node)
                return
            if node.type == FileType.DIRECTORY:
                src_keys = [self._key(p) for p in src.split("/")]
                dst_keys = [self._key(p) for p in dst.split("/")]
                if dst_keys[: len(src_keys)] == src_keys:
                    raise OSError(errno.EINVAL, "Cannot move a directory into itself", dst)
            if existing is not None:
                old = existing[1]
                if old.type == FileType.DIRECTORY and node.type != FileType.DIRECTORY:
                    raise IsADirectoryError(errno.EISDIR, "Is a directory", dst)
                if node.type == FileType.DIRECTORY and old.type != FileType.DIRECTORY:
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", dst)
                if old.type == FileType.DIRECTORY and old.children:
                    raise OSError(errno.ENOTEMPTY, "Directory not empty", dst)
            del src_parent.children[self._key(src_base)]
            dst_parent.children[dst_key] = (dst_base, node)
            src_parent.mtime_ns = dst_parent.mtime_ns = self._now()

    def remove(self, name: str) -> None:
        with self._lock:
            parent, base, node = self._get(name)
            if node.type == FileType.DIRECTORY:
                raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
            del parent.children[self._key(base)]
            parent.mtime_ns = self._now()

    def rmdir(self, name: str) -> None:
        with self._lock:
            parent, base, node = self._get(name)
            if node.type != FileType.DIRECTORY:
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", name)
            if node.children:
                raise OSError(errno.ENOTEMPTY, "Directory not empty", name)
            del parent.children[self._key(base)]
            parent.mtime_ns = self._now()

    def mkdir(self, name: str, mode: int = 0o755) -> None:
        with self._lock:
            parent, base = self._parent(name)
            self._add(parent, base, self._new(FileType.DIRECTORY, mode), name)

    def makedirs(self, name: str, mode: int = 0o755) -> None:
        validate_name(name)
        with self._lock:
            parts = name.split("/")
            for i in range(1, len(parts) + 1):
                parent = self._walk_dirs(parts[: i - 1], name)
                if self._key(parts[i - 1]) not in parent.children:
                    self._add(parent, parts[i - 1], self._new(FileType.DIRECTORY, mode), name)
            self._walk_dirs(parts, name)

    def symlink(self, target: str, name: str) -> None:
        with self._lock:
            parent, base = self._parent(name)
            node = self._new(FileType.SYMLINK, 0o777)
            node.target = target
            self._add(parent, base, node, name)

    def chmod(self, name: str, mode: int) -> None:
        with self._lock:
            node = self._get(name)[2]
            if node.type == FileType.SYMLINK:
                raise UnsafePathError(f"{name!r} is a symlink; its permissions are not synced")
            node.mode = mode & 0o7777

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        with self._lock:
            self._get(name)[2].mtime_ns = self._truncate(mtime_ns)

    def fsync_dir(self, dirname: str) -> None:
        with self._lock:
            self._dir(dirname)  # raises unless it is an existing directory

    def fsync_files(self, handles: Sequence[WriteHandle]) -> list[OSError | None]:
        return durable.fsync_each([h.fsync for h in handles])

    def fsync_dirs(self, dirnames: Iterable[str]) -> list[tuple[str, OSError]]:
        for dirname in dirnames:
            try:
                self.fsync_dir(dirname)
            except (OSError, FilesystemError):
                continue  # gone (or replaced), as BasicFS skips it
        return []  # nothing in memory fails to become durable

    # ------------------------------------------------------------------ properties

    def free_space(self) -> int:
        return self.free_bytes

    def cached_dirs(self) -> AbstractContextManager[None]:
        return nullcontext()  # lookups are dictionary walks; nothing worth caching

    def is_case_insensitive(self) -> bool:
        return self._ci

    def real_name(self, name: str) -> str:
        validate_name(name)
        with self._lock:
            node = self._root
            real: list[str] = []
            for part in name.split("/"):
                if node.type != FileType.DIRECTORY:
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", name)
                entry = node.children.get(self._key(part))
                if entry is None:
                    raise _missing(name)
                real.append(entry[0])
                node = entry[1]
            return "/".join(real)
