"""Making a batch of new files durable at once.

An ``fsync`` of each new small file makes the disk flush its cache once per file; with
64 files a batch that is most of the batch's time. On Linux, ``syncfs`` writes back every
dirty page and inode of one filesystem and flushes once. Because it also writes what
*other* programs left dirty on that filesystem, a batch uses it only while the machine
holds little dirty or in-flight data (``/proc/meminfo``); a user copying a big file
elsewhere on the disk makes batches fall back to one ``fsync`` per file instead of
waiting for that copy.

``syncfs`` reports writeback errors only from Linux 5.8 on (earlier kernels return 0
even after a failed write), so older kernels never use it. When it fails, every file is
``fsync``-ed on its own, which reports each file's own error. Descriptors on different
filesystems (a mount point inside the folder) get one ``syncfs`` per filesystem.

Some filesystems answer ``syncfs`` with success without making anything durable: the
kernel answers it for FUSE filesystems without asking them (only virtiofs forwards it),
and network filesystems flush nothing on the server. On those (``fstatfs``'s type) a
batch always fsyncs each file; tests/powerloss found this with a power cut on FUSE, where
a whole pull of small files reached the disk with no sync at all.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import struct
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

FSYNC_THREADS = 8  # a batch's separate fsyncs run side by side
SYNCFS_MIN = 2  # fewer descriptors than this: fsync them
PENDING_MAX = 64 * 1024 * 1024  # dirty + writeback bytes above which syncfs could stall
# statfs f_type of filesystems whose syncfs returns success without flushing anything
SYNCFS_IGNORED = {
    0x65735546: "fuse",
    0x6969: "nfs",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x517B: "smb",
    0x01021997: "9p",
}
_STATFS_SIZE = 256  # larger than struct statfs on every Linux architecture


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` on a kernel that reports writeback errors through it, else None."""
    if sys.platform != "linux" or not kernel_at_least(platform.release(), 5, 8):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # ctypes releases the interpreter lock for the call


def kernel_at_least(release: str, major: int, minor: int) -> bool:
    """Whether a Linux release string (``platform.release()``) is ``major.minor`` or later."""
    parts = release.split(".")
    try:
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (IndexError, ValueError):
        return False


def pending_write_bytes() -> int | None:
    """Dirty plus writeback memory of the whole machine (None where it cannot be read)."""
    try:
        with open("/proc/meminfo", "rb") as f:
            text = f.read()
    except OSError:
        return None
    total = 0
    found = 0
    for line in text.splitlines():
        if line.startswith((b"Dirty:", b"Writeback:")):
            fields = line.split()
            total += int(fields[1]) * 1024  # reported in kB
            found += 1
    return total if found == 2 else None


def syncfs_usable() -> bool:
    """Whether this system has a ``syncfs`` that reports errors (Linux 5.8 or later)."""
    return _libc_syncfs() is not None


def syncfs_worthwhile(count: int, pending: int | None) -> bool:
    """Whether ``count`` descriptors should be made durable with ``syncfs``: enough of
    them, a kernel that reports its errors, and little else waiting to be written."""
    return (
        count >= SYNCFS_MIN and pending is not None and pending <= PENDING_MAX and syncfs_usable()
    )


@functools.cache
def _libc_fstatfs() -> Callable[[int, ctypes.Array[ctypes.c_char]], int] | None:
    if sys.platform != "linux":
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).fstatfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def filesystem_type(fd: int) -> int | None:
    """``fstatfs``'s ``f_type`` (the filesystem's magic number) for ``fd``, or None."""
    fn = _libc_fstatfs()
    if fn is None:
        return None
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if fn(fd, buf) != 0:
        return None
    return int(struct.unpack_from("l", buf.raw, 0)[0]) & 0xFFFFFFFF  # first field, a long


def syncfs_trusted(fd: int) -> bool:
    """Whether ``syncfs`` on ``fd``'s filesystem really makes its writes durable (False
    for FUSE and network filesystems, and where the type cannot be read)."""
    kind = filesystem_type(fd)
    return kind is not None and kind not in SYNCFS_IGNORED


def syncfs(fd: int) -> None:
    """``syncfs(2)`` on the filesystem holding ``fd``; OSError if it reports an error."""
    fn = _libc_syncfs()
    if fn is None:
        raise OSError(0, "syncfs is not usable on this system")
    if fn(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def sync_filesystems(fds: Sequence[int]) -> bool:
    """One ``syncfs`` per filesystem among ``fds``; False if any failed, is on a
    filesystem that ignores ``syncfs``, or a descriptor could not be examined, in which
    case the caller fsyncs each one."""
    try:
        firsts = one_per_filesystem(fds)
        if not all(syncfs_trusted(fd) for fd in firsts):
            return False
        for fd in firsts:
            syncfs(fd)
    except OSError:
        return False
    return True


def one_per_filesystem(fds: Sequence[int]) -> list[int]:
    """The first of ``fds`` on each filesystem they are on (OSError if one is not open)."""
    by_device: dict[int, int] = {}
    for fd in fds:
        by_device.setdefault(os.fstat(fd).st_dev, fd)
    return list(by_device.values())


def fsync_each(fsyncs: Sequence[Callable[[], None]]) -> list[OSError | None]:
    """Run every fsync (several at once); the error of each, None where it worked."""

    def one(fsync: Callable[[], None]) -> OSError | None:
        try:
            fsync()
        except OSError as exc:
            return exc
        return None

    if len(fsyncs) <= 1:
        return [one(f) for f in fsyncs]
    with ThreadPoolExecutor(min(FSYNC_THREADS, len(fsyncs)), "p2psync-fsync") as pool:
        return list(pool.map(one, fsyncs))
