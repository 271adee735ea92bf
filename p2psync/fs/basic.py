"""The real filesystem: a folder on local disk, reached without ever following a symlink.

Every operation opens the folder root, then each parent directory of the name with
``O_DIRECTORY | O_NOFOLLOW`` relative to the previous one (``dir_fd``), and finally acts
on the base name relative to its parent's descriptor with no-follow flags. So a symlink
planted anywhere in a name (``link/x`` with ``link -> /etc``) is refused with
UnsafePathError instead of being traversed, even if it appears between a check and the
use. POSIX only (Linux, macOS, BSD): Windows has no ``dir_fd``.

Walking the chain costs a few syscalls per operation. A worker thread that touches many
names at once (the puller applying a batch of small files) wraps the batch in
``cached_dirs()``: within it, that thread keeps the directory descriptors it opened and
reuses them. The guarantee is unchanged — each descriptor was reached without following
a symlink — but a directory the *user* moves away during the batch is followed to its
new place for the rest of the batch (milliseconds), as an open file would be. Our own
renames and removals of directories drop the affected descriptors at once.
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_mod
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import Self

from ..errors import FilesystemError, UnsafePathError
from ..protocol.fileinfo import FileType
from ..protocol.names import validate_name
from . import direct_io, durable, noreplace
from .base import DirEntry, FileStat, WriteHandle
from .internal import MARKER

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# errnos an O_NOFOLLOW open may report when it meets a symlink (Linux/macOS, FreeBSD)
_SYMLINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR, errno.EOPNOTSUPP})
_DIR_CACHE_MAX = 512  # descriptors one thread may hold inside cached_dirs()


def stat_from_os(st: os.stat_result, symlink_target: str = "") -> FileStat:
    mode = st.st_mode
    size = 0
    ftype: FileType | None
    if stat_mod.S_ISREG(mode):
        ftype, size = FileType.FILE, st.st_size
    elif stat_mod.S_ISDIR(mode):
        ftype = FileType.DIRECTORY
    elif stat_mod.S_ISLNK(mode):
        ftype = FileType.SYMLINK
    else:
        ftype = None
    return FileStat(ftype, size, st.st_mtime_ns, st.st_ino, mode & 0o777, symlink_target)


def _is_symlink_at(dir_fd: int, base: str) -> bool:
    try:
        return stat_mod.S_ISLNK(os.stat(base, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class _FdHandle:
    """A regular file open by descriptor; positional reads/writes only.

    After ``bypass_cache()`` aligned writes go through a second, ``O_DIRECT`` descriptor
    (``direct_io.py``); reads and any other write still use the first one.
    """

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self._direct_fd = -1
        self.name = name

    def bypass_cache(self) -> bool:
        if self._direct_fd < 0:
            direct = direct_io.open_direct(self._fd)
            self._direct_fd = -1 if direct is None else direct
        return self._direct_fd >= 0

    def read_at(self, offset: int, size: int) -> bytes:
        first = os.pread(self._fd, size, offset)
        if len(first) == size or not first:
            return first
        parts = [first]
        got = len(first)
        while got < size:
            more = os.pread(self._fd, size - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def write_at(self, offset: int, data: bytes) -> None:
        direct = self._direct_fd
        if direct >= 0 and direct_io.can_write_direct(offset):
            if direct_io.write_direct(direct, offset, data):
                return
            self._stop_bypassing()
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def reserve(self, size: int) -> None:
        try:
            os.posix_fallocate(self._fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise

    def fsync(self) -> None:
        os.fsync(self._fd)

    def fileno(self) -> int:
        return self._fd

    def chmod(self, mode: int) -> None:
        os.fchmod(self._fd, mode & 0o7777)

    def set_mtime(self, mtime_ns: int) -> None:
        os.utime(self._fd, ns=(mtime_ns, mtime_ns))

    def stat(self) -> FileStat:
        return stat_from_os(os.fstat(self._fd))

    def _stop_bypassing(self) -> None:
        direct, self._direct_fd = self._direct_fd, -1
        if direct >= 0:
            os.close(direct)

    def close(self) -> None:
        self._stop_bypassing()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BasicFS:
    """A shared folder on the local disk. ``root`` itself may be a symlink (the user chose
    it); nothing below it is ever followed."""

    def __init__(self, root: str | os.PathLike[str], *, mtime_granularity_ns: int = 1) -> None:
        self._root = os.path.abspath(os.fspath(root))
        self._granularity = mtime_granularity_ns
        self._case_insensitive: bool | None = None
        self._thread = threading.local()  # .dirs: the cached_dirs() descriptors, or None

    def __repr__(self) -> str:
        return f"BasicFS({self._root!r})"

    @property
    def root(self) -> str:
        return self._root

    @property
    def mtime_granularity_ns(self) -> int:
        return self._granularity

    # ------------------------------------------------------------------ resolution

    @contextmanager
    def cached_dirs(self) -> Iterator[None]:
        """Reuse directory descriptors on this thread until the block ends (see the module
        docstring). Nested use is a no-op."""
        if getattr(self._thread, "dirs", None) is not None:
            yield
            return
        cache: dict[str, int] = {}
        self._thread.dirs = cache
        try:
            yield
        finally:
            self._thread.dirs = None
            for fd in cache.values():
                os.close(fd)

    def _cache(self) -> dict[str, int] | None:
        return getattr(self._thread, "dirs", None)

    def _forget_dirs(self, name: str) -> None:
        """Drop cached descriptors of ``name`` and below (it is being moved or removed)."""
        cache = self._cache()
        if not cache:
            return
        prefix = name + "/"
        for key in [k for k in cache if k == name or k.startswith(prefix)]:
            os.close(cache.pop(key))

    def _open_root(self) -> int:
        try:
            return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except FileNotFoundError as exc:
            raise FilesystemError(f"folder root {self._root} does not exist") from exc
        except NotADirectoryError as exc:
            raise FilesystemError(f"folder root {self._root} is not a directory") from exc

    def _open_dirs(self, parts: list[str], name: str) -> tuple[int, bool]:
        """A descriptor of the directory reached by ``parts`` from the root, no symlinks,
        and whether the caller owns it (False: it belongs to the cached_dirs() cache)."""
        cache = self._cache()
        if cache is not None:
            return self._open_dirs_cached(cache, parts, name), False
        fd = self._open_root()
        try:
            for i, part in enumerate(parts):
                next_fd = self._open_child(fd, part, parts, i, name)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd, True

    def _open_dirs_cached(self, cache: dict[str, int], parts: list[str], name: str) -> int:
        key = "/".join(parts)
        fd = cache.get(key)
        if fd is not None:
            return fd
        # Start from the deepest cached ancestor, caching every directory on the way.
        depth = len(parts)
        while depth > 0 and "/".join(parts[:depth]) not in cache:
            depth -= 1
        if depth == 0:
            fd = cache.get("")
            if fd is None:
                if len(cache) >= _DIR_CACHE_MAX:
                    self._clear(cache)
                fd = cache[""] = self._open_root()
        else:
            fd = cache["/".join(parts[:depth])]
        for i in range(depth, len(parts)):
            if len(cache) >= _DIR_CACHE_MAX:
                # keep the descriptor we walk from; drop the rest
                keep = "/".join(parts[:i])
                held = cache.pop(keep)
                self._clear(cache)
                cache[keep] = held
            fd = cache["/".join(parts[: i + 1])] = self._open_child(fd, parts[i], parts, i, name)
        return fd

    @staticmethod
    def _clear(cache: dict[str, int]) -> None:
        for fd in cache.values():
            os.close(fd)
        cache.clear()

    @staticmethod
    def _open_child(fd: int, part: str, parts: list[str], i: int, name: str) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in _SYMLINK_ERRNOS and _is_symlink_at(fd, part):
                via = "/".join(parts[: i + 1])
                raise UnsafePathError(f"{name!r} passes through the symlink {via!r}") from exc
            raise

    @contextmanager
    def _parent(self, name: str) -> Iterator[tuple[int, str]]:
        """(descriptor of the parent directory, base name) for a validated ``name``."""
        validate_name(name)
        *dirs, base = name.split("/")
        fd, owned = self._open_dirs(dirs, name)
        try:
            yield fd, base
        finally:
            if owned:
                os.close(fd)

    @contextmanager
    def _dir(self, dirname: str) -> Iterator[int]:
        if dirname == "":
            cache = self._cache()
            if cache is not None:
                fd, owned = self._open_dirs_cached(cache, [], dirname), False
            else:
                fd, owned = self._open_root(), True
        else:
            validate_name(dirname)
            fd, owned = self._open_dirs(dirname.split("/"), dirname)
        try:
            yield fd
        finally:
            if owned:
                os.close(fd)

    def _open_file(self, name: str, flags: int, mode: int = 0o600) -> _FdHandle:
        with self._parent(name) as (dir_fd, base):
            try:
                fd = os.open(base, flags | os.O_NOFOLLOW | _CLOEXEC, mode, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in _SYMLINK_ERRNOS and _is_symlink_at(dir_fd, base):
                    raise UnsafePathError(f"{name!r} is a symlink, not a file") from exc
                raise
        if flags & os.O_EXCL:  # created by this call: a regular file, nothing to check
            return _FdHandle(fd, name)
        try:
            st = os.fstat(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
            if not stat_mod.S_ISREG(st.st_mode):
                raise FilesystemError(f"{name!r} is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return _FdHandle(fd, name)

    # ------------------------------------------------------------------ reading

    def lstat(self, name: str) -> FileStat:
        with self._parent(name) as (dir_fd, base):
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            target = os.readlink(base, dir_fd=dir_fd) if stat_mod.S_ISLNK(st.st_mode) else ""
        return stat_from_os(st, target)

    def scandir(self, dirname: str) -> list[DirEntry]:
        entries: list[DirEntry] = []
        with self._dir(dirname) as dir_fd, os.scandir(dir_fd) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                    target = ""
                    if stat_mod.S_ISLNK(st.st_mode):
                        target = os.readlink(entry.name, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue  # removed while we listed: it is simply not there
                entries.append(DirEntry(entry.name, stat_from_os(st, target)))
        return entries

    def open_read(self, name: str) -> _FdHandle:
        # O_NONBLOCK: opening a FIFO planted under a file's name must not hang.
        return self._open_file(name, os.O_RDONLY | os.O_NONBLOCK)

    def readlink(self, name: str) -> str:
        with self._parent(name) as (dir_fd, base):
            return os.readlink(base, dir_fd=dir_fd)

    # ------------------------------------------------------------------ writing

    def open_write(self, name: str, *, exclusive: bool = False, mode: int = 0o600) -> _FdHandle:
        flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if exclusive else 0)
        return self._open_file(name, flags, mode)

    def rename(self, src: str, dst: str) -> None:
        self._forget_dirs(src)
        self._forget_dirs(dst)
        with self._parent(src) as (src_fd, src_base), self._parent(dst) as (dst_fd, dst_base):
            os.replace(src_base, dst_base, src_dir_fd=src_fd, dst_dir_fd=dst_fd)

    def rename_new(self, src: str, dst: str) -> None:
        self._forget_dirs(src)
        with self._parent(src) as (src_fd, src_base), self._parent(dst) as (dst_fd, dst_base):
            if noreplace.rename_noreplace(src_fd, src_base, dst_fd, dst_base):
                return
            try:  # no atomic way here: check, then rename
                os.stat(dst_base, dir_fd=dst_fd, follow_symlinks=False)
            except FileNotFoundError:
                os.replace(src_base, dst_base, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                return
            raise FileExistsError(errno.EEXIST, "File exists", dst)

    def remove(self, name: str) -> None:
        with self._parent(name) as (dir_fd, base):
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if stat_mod.S_ISDIR(st.st_mode):  # macOS unlink() reports EPERM; be uniform
                raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
            os.unlink(base, dir_fd=dir_fd)

    def rmdir(self, name: str) -> None:
        self._forget_dirs(name)
        with self._parent(name) as (dir_fd, base):
            os.rmdir(base, dir_fd=dir_fd)

    def mkdir(self, name: str, mode: int = 0o755) -> None:
        with self._parent(name) as (dir_fd, base):
            os.mkdir(base, mode, dir_fd=dir_fd)

    def makedirs(self, name: str, mode: int = 0o755) -> None:
        validate_name(name)
        parts = name.split("/")
        for i in range(len(parts)):
            with self._dir("/".join(parts[:i])) as dir_fd:
                try:
                    os.mkdir(parts[i], mode, dir_fd=dir_fd)
                except FileExistsError:
                    pass
        with self._dir(name):  # every component is now a real directory, or this raises
            pass

    def symlink(self, target: str, name: str) -> None:
        with self._parent(name) as (dir_fd, base):
            os.symlink(target, base, dir_fd=dir_fd)

    def chmod(self, name: str, mode: int) -> None:
        with self._parent(name) as (dir_fd, base):
            if _is_symlink_at(dir_fd, base):
                raise UnsafePathError(f"{name!r} is a symlink; its permissions are not synced")
            try:
                os.chmod(base, mode, dir_fd=dir_fd, follow_symlinks=False)
            except (NotImplementedError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno not in _SYMLINK_ERRNOS:
                    raise
                # No fchmodat(AT_SYMLINK_NOFOLLOW) here: chmod through a no-follow descriptor.
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
                fd = os.open(base, flags, dir_fd=dir_fd)
                try:
                    os.fchmod(fd, mode)
                finally:
                    os.close(fd)

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        with self._parent(name) as (dir_fd, base):
            os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def fsync_dir(self, dirname: str) -> None:
        with self._dir(dirname) as dir_fd:
            os.fsync(dir_fd)

    def fsync_files(self, handles: Sequence[WriteHandle]) -> list[OSError | None]:
        fds = [h.fileno() for h in handles if isinstance(h, _FdHandle)]
        if (
            len(fds) == len(handles)
            and durable.syncfs_worthwhile(len(fds), durable.pending_write_bytes())
            and durable.sync_filesystems(fds)
        ):
            return [None] * len(handles)
        return durable.fsync_each([h.fsync for h in handles])

    def fsync_dirs(self, dirnames: Iterable[str]) -> list[tuple[str, OSError]]:
        with ExitStack() as stack:
            opened: list[tuple[str, int]] = []
            for dirname in dirnames:
                try:
                    opened.append((dirname, stack.enter_context(self._dir(dirname))))
                except (OSError, FilesystemError):
                    continue  # gone (or replaced): nothing left to make durable
            fds = [fd for _, fd in opened]
            if durable.syncfs_worthwhile(
                len(fds), durable.pending_write_bytes()
            ) and durable.sync_filesystems(fds):
                return []
            errors = durable.fsync_each([functools.partial(os.fsync, fd) for fd in fds])
            return [(d, e) for (d, _), e in zip(opened, errors, strict=True) if e is not None]

    # ------------------------------------------------------------------ properties

    def free_space(self) -> int:
        st = os.statvfs(self._root)
        return st.f_bavail * st.f_frsize

    def is_case_insensitive(self) -> bool:
        if self._case_insensitive is None:
            self._case_insensitive = self._probe_case_insensitive()
        return self._case_insensitive

    def _probe_case_insensitive(self) -> bool:
        """Look up an existing path with its case swapped; no writes needed.

        Tries the folder marker first (same filesystem for sure), then the root path's
        own components. Without any cased letter to swap, assume case-sensitive.
        """
        candidates = [os.path.join(self._root, MARKER)]
        path = self._root
        while True:
            candidates.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        for path in candidates:
            head, tail = os.path.split(path)
            swapped = tail.swapcase()
            if not tail or swapped == tail:
                continue
            try:
                original = os.lstat(path)
            except OSError:
                continue
            try:
                other = os.lstat(os.path.join(head, swapped))
            except OSError:
                return False
            return (other.st_ino, other.st_dev) == (original.st_ino, original.st_dev)
        return False

    def real_name(self, name: str) -> str:
        validate_name(name)
        if not self.is_case_insensitive():
            return name
        parts = name.split("/")
        real: list[str] = []
        for part in parts:
            names = [e.name for e in self.scandir("/".join(real))]
            if part in names:
                real.append(part)
                continue
            folded = part.casefold()
            match = next((n for n in names if n.casefold() == folded), None)
            if match is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
            real.append(match)
        return "/".join(real)
