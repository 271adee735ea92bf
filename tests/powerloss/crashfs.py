"""crashfs: a FUSE filesystem for tests that can "lose power".

It passes every operation through to a backing directory and keeps, beside it, what a
real disk would still hold if the power went off now. On a cut it writes that state into
an output directory and freezes (every later request blocks), so the program under test
makes no further progress; the test then kills it and restarts it on what survived.

The model (conservative, in the spirit of ext4 ``data=ordered`` without its extra
ordering guarantees, and of ALICE/CrashMonkey):

* A regular file's content, size, mode and mtime are durable as of its last ``fsync``
  or ``fdatasync`` (both treated alike). The first change after a sync (write,
  truncate, chmod, utime) copies the durable version aside; a sync drops that copy.
  A file created since the mount is durable as an empty file until its first sync.
* A directory's entries (name -> inode) are durable as of its last ``fsync``. The first
  create, mkdir, symlink, unlink, rmdir or rename touching a directory records its
  entries; an fsync of the directory drops that record. A rename between two
  directories changes both: if only the target is synced, the file survives under both
  names (copied twice); if only the source is, it survives under neither.
* Syncing a file does not make its name durable, and syncing a directory does not make
  its files' data durable: each needs its own sync.
* ``syncfs`` is never seen: the kernel answers it for a FUSE filesystem without asking
  the filesystem (only virtiofs forwards it), so crashfs is a filesystem on which
  ``syncfs`` returns success and makes nothing durable.
* Ownership, xattrs, atime and directory mtimes are not modelled (taken from the end
  state). Hard links are not supported (EPERM).
* Everything present in the backing directory at mount time is durable.

Removed files and directories are moved into the state directory instead of being
deleted, so their inode (and the content a durable name may still point at) stays
alive; inode numbers are therefore never reused while mounted.

Control (one line per command on stdin, answers on stdout): ``arm N`` cuts just before
the N-th sync request from now (fsync or fsyncdir; the N-th is not applied); ``cut``
cuts now; ``count`` answers ``count K`` (sync requests since the mount); ``quit``
unmounts; ``release``, once the program under test is killed, fails every request
held since the cut with EIO (the kernel waits for answers even for a killed process). A
cut answers ``cut K`` once the output directory is written.

Run: ``python crashfs.py BACKING MOUNTPOINT STATE OUTPUT``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyfuse3
import trio
from pyfuse3 import EntryAttributes, FileInfo, FUSEError

_OPATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_STRIP = (
    os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_DIRECT", 0)
)


@contextmanager
def _oserror() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise FUSEError(exc.errno or errno.EIO) from None


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


class CrashFS(pyfuse3.Operations):
    """The pass-through filesystem and its model of what is durable (module docstring)."""

    def __init__(self, backing: str, state: str, output: str, emit: Callable[[str], None]) -> None:
        super().__init__()
        self.state = state
        self.output = output
        self.emit = emit
        os.makedirs(os.path.join(state, "snap"), exist_ok=True)
        os.makedirs(os.path.join(state, "dead"), exist_ok=True)
        self.fds: dict[int, int] = {}  # our inode -> O_PATH descriptor of the backing inode
        self.by_key: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> our inode
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.snap_file: dict[int, str] = {}  # dirty file -> copy of its durable version
        self.snap_dir: dict[int, dict[str, int]] = {}  # dirty directory -> durable entries
        self.links: dict[int, str] = {}  # symlink -> target
        self.handles: dict[int, tuple[int, int]] = {}  # fh -> (inode, backing fd)
        self.next_fh = 1
        self.syncs = 0
        self.cut_at: int | None = None
        self.frozen = False
        self.thaw = trio.Event()  # set by ``release`` once the process under test is killed
        root = os.open(backing, _OPATH | os.O_DIRECTORY)
        st = os.fstat(root)
        self.fds[pyfuse3.ROOT_INODE] = root
        self.by_key[(st.st_dev, st.st_ino)] = pyfuse3.ROOT_INODE

    # ---- inodes -------------------------------------------------------------------------

    def _register(self, dir_fd: int, name: str) -> int:
        """Our inode for ``name`` in the backing directory ``dir_fd`` (opened once)."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        key = (st.st_dev, st.st_ino)
        ino = self.by_key.get(key)
        if ino is None:
            fd = os.open(name, _OPATH, dir_fd=dir_fd)
            ino = self.next_ino
            self.next_ino += 1
            self.by_key[key] = ino
            self.fds[ino] = fd
            if stat.S_ISLNK(st.st_mode):
                self.links[ino] = os.readlink(name, dir_fd=dir_fd)
        return ino

    def _fd(self, ino: int) -> int:
        try:
            return self.fds[ino]
        except KeyError:
            raise FUSEError(errno.ENOENT) from None

    def _attr(self, ino: int) -> EntryAttributes:
        st = os.stat(self._fd(ino))
        entry = EntryAttributes()
        for name in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
            "st_atime_ns", "st_mtime_ns", "st_ctime_ns",
        ):  # fmt: skip
            setattr(entry, name, getattr(st, name))
        entry.st_ino = ino
        entry.generation = 0
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        entry.st_blksize = 4096
        entry.st_blocks = (st.st_size + 511) // 512
        return entry

    def _listing(self, ino: int) -> dict[str, int]:
        fd = self._fd(ino)
        dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        try:
            return {name: self._register(dir_fd, name) for name in os.listdir(dir_fd)}
        finally:
            os.close(dir_fd)

    @contextmanager
    def _dirfd(self, ino: int) -> Iterator[int]:
        """A real descriptor of directory ``ino`` (O_PATH ones do not serve ``*at`` writes
        on every kernel, so one is opened per call)."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=self._fd(ino))
        try:
            yield fd
        finally:
            os.close(fd)

    # ---- the durability model -----------------------------------------------------------

    def _touch_file(self, ino: int) -> None:
        """Before the first change since the last sync: keep the durable version."""
        if ino in self.snap_file:
            return
        copy = os.path.join(self.state, "snap", str(ino))
        shutil.copy2(_proc(self._fd(ino)), copy)
        self.snap_file[ino] = copy

    def _new_file(self, ino: int) -> None:
        copy = os.path.join(self.state, "snap", str(ino))
        with open(copy, "wb"):
            pass
        self.snap_file[ino] = copy

    def _touch_dir(self, ino: int) -> None:
        if ino not in self.snap_dir:
            self.snap_dir[ino] = self._listing(ino)

    def _bury(self, parent: int, name: str) -> None:
        """Remove ``name`` by moving it into the state directory (its inode stays alive)."""
        with self._dirfd(parent) as dir_fd:
            ino = self._register(dir_fd, name)
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._touch_dir(ino)  # records its (empty) durable entries
            elif stat.S_ISREG(st.st_mode):
                self._touch_file(ino)  # writes through an open handle may follow
            dead = os.open(os.path.join(self.state, "dead"), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.rename(name, str(ino), src_dir_fd=dir_fd, dst_dir_fd=dead)
            finally:
                os.close(dead)

    async def _gate(self) -> None:
        """After a cut: wait for ``release``, then fail (the kernel waits for an answer to
        a request it has handed over even from a killed process, so one must come)."""
        if self.frozen:
            await self.thaw.wait()
            raise FUSEError(errno.EIO)

    async def _sync_point(self) -> bool:
        """Count a sync request; a cut before it is applied never returns (EIO)."""
        await self._gate()
        self.syncs += 1
        if self.cut_at is not None and self.syncs >= self.cut_at:
            self.cut()
            await self._gate()
        return True

    def cut(self) -> None:
        """Write the durable state to the output directory and freeze."""
        if self.frozen:
            return
        self.frozen = True
        if os.path.exists(self.output):
            shutil.rmtree(self.output)
        os.makedirs(self.output)
        self._materialize(pyfuse3.ROOT_INODE, self.output, set())
        self.emit(f"cut {self.syncs}")

    def durable_entries(self, ino: int) -> dict[str, int]:
        return dict(self.snap_dir[ino]) if ino in self.snap_dir else self._listing(ino)

    def _materialize(self, ino: int, out: str, seen: set[int]) -> None:
        seen.add(ino)
        for name, child in sorted(self.durable_entries(ino).items()):
            target = os.path.join(out, name)
            mode = os.stat(self.fds[child]).st_mode
            if stat.S_ISDIR(mode):
                if child in seen:
                    continue  # a cycle only partial syncs of renames can make
                os.mkdir(target)
                self._materialize(child, target, seen)
                shutil.copystat(_proc(self.fds[child]), target)
            elif stat.S_ISLNK(mode):
                os.symlink(self.links[child], target)
            elif stat.S_ISREG(mode):
                shutil.copy2(self.snap_file.get(child) or _proc(self.fds[child]), target)

    # ---- FUSE operations ----------------------------------------------------------------

    async def lookup(self, parent_inode: Any, name: bytes, ctx: Any) -> EntryAttributes:
        await self._gate()
        with _oserror(), self._dirfd(parent_inode) as dir_fd:
            return self._attr(self._register(dir_fd, os.fsdecode(name)))

    async def getattr(self, inode: Any, ctx: Any = None) -> EntryAttributes:
        await self._gate()
        with _oserror():
            return self._attr(inode)

    async def readlink(self, inode: Any, ctx: Any) -> bytes:
        await self._gate()
        return os.fsencode(self.links[inode])

    async def opendir(self, inode: Any, ctx: Any) -> Any:
        await self._gate()
        return inode

    async def readdir(self, fh: Any, start_id: int, token: Any) -> None:
        await self._gate()
        with _oserror():
            entries = sorted(self._listing(fh).items(), key=lambda e: e[1])
            for name, ino in entries:
                if ino <= start_id:
                    continue
                if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attr(ino), ino):
                    break

    async def fsyncdir(self, fh: Any, datasync: bool) -> None:
        if await self._sync_point():
            self.snap_dir.pop(fh, None)

    async def mkdir(self, parent_inode: Any, name: bytes, mode: int, ctx: Any) -> EntryAttributes:
        await self._gate()
        with _oserror(), self._dirfd(parent_inode) as dir_fd:
            self._touch_dir(parent_inode)
            os.mkdir(os.fsdecode(name), mode & ~ctx.umask, dir_fd=dir_fd)
            ino = self._register(dir_fd, os.fsdecode(name))
            self.snap_dir[ino] = {}
            return self._attr(ino)

    async def mknod(self, parent_inode: Any, name: bytes, mode: int, rdev: int, ctx: Any) -> Any:
        raise FUSEError(errno.EPERM)

    async def link(self, inode: Any, new_parent_inode: Any, new_name: bytes, ctx: Any) -> Any:
        raise FUSEError(errno.EPERM)

    async def symlink(self, parent_inode: Any, name: bytes, target: bytes, ctx: Any) -> Any:
        await self._gate()
        with _oserror(), self._dirfd(parent_inode) as dir_fd:
            self._touch_dir(parent_inode)
            os.symlink(os.fsdecode(target), os.fsdecode(name), dir_fd=dir_fd)
            return self._attr(self._register(dir_fd, os.fsdecode(name)))

    async def unlink(self, parent_inode: Any, name: bytes, ctx: Any) -> None:
        await self._gate()
        with _oserror():
            self._touch_dir(parent_inode)
            self._bury(parent_inode, os.fsdecode(name))

    async def rmdir(self, parent_inode: Any, name: bytes, ctx: Any) -> None:
        await self._gate()
        with _oserror(), self._dirfd(parent_inode) as dir_fd:
            if os.listdir(_proc(self._fd(self._register(dir_fd, os.fsdecode(name))))):
                raise FUSEError(errno.ENOTEMPTY)
            self._touch_dir(parent_inode)
            self._bury(parent_inode, os.fsdecode(name))

    async def rename(
        self, parent_inode_old: Any, name_old: bytes, parent_inode_new: Any, name_new: bytes,
        flags: int, ctx: Any,
    ) -> None:  # fmt: skip
        await self._gate()
        if flags:
            raise FUSEError(errno.EINVAL)
        old, new = os.fsdecode(name_old), os.fsdecode(name_new)
        with _oserror(), self._dirfd(parent_inode_old) as src, self._dirfd(parent_inode_new) as dst:
            os.stat(old, dir_fd=src, follow_symlinks=False)  # ENOENT before any change
            self._touch_dir(parent_inode_old)
            self._touch_dir(parent_inode_new)
            try:
                target = os.stat(new, dir_fd=dst, follow_symlinks=False)
            except FileNotFoundError:
                target = None
            if target is not None:
                moving = os.stat(old, dir_fd=src, follow_symlinks=False)
                if (target.st_dev, target.st_ino) == (moving.st_dev, moving.st_ino):
                    return
                if stat.S_ISDIR(target.st_mode) and os.listdir(
                    _proc(self.fds[self._register(dst, new)])
                ):
                    raise FUSEError(errno.ENOTEMPTY)
                self._bury(parent_inode_new, new)
            os.rename(old, new, src_dir_fd=src, dst_dir_fd=dst)

    async def setattr(self, inode: Any, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
        await self._gate()
        with _oserror():
            path = _proc(self._fd(inode))
            if inode in self.links:
                return self._attr(inode)
            if stat.S_ISREG(os.stat(self._fd(inode)).st_mode):
                self._touch_file(inode)
            if fields.update_size:
                os.truncate(path, attr.st_size)
            if fields.update_mode:
                os.chmod(path, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                os.chown(
                    path, attr.st_uid if fields.update_uid else -1,
                    attr.st_gid if fields.update_gid else -1,
                )  # fmt: skip
            if fields.update_atime or fields.update_mtime:
                old = os.stat(path)
                atime = attr.st_atime_ns if fields.update_atime else old.st_atime_ns
                mtime = attr.st_mtime_ns if fields.update_mtime else old.st_mtime_ns
                os.utime(path, ns=(atime, mtime))
            return self._attr(inode)

    def _open_handle(self, ino: int, flags: int) -> FileInfo:
        fd = os.open(_proc(self._fd(ino)), (flags & ~_STRIP) | os.O_CLOEXEC)
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (ino, fd)
        return FileInfo(fh=fh)

    async def open(self, inode: Any, flags: int, ctx: Any) -> FileInfo:
        await self._gate()
        with _oserror():
            if flags & os.O_TRUNC:
                self._touch_file(inode)
                os.truncate(_proc(self._fd(inode)), 0)
            return self._open_handle(inode, flags)

    async def create(
        self, parent_inode: Any, name: bytes, mode: int, flags: int, ctx: Any
    ) -> tuple[FileInfo, EntryAttributes]:
        await self._gate()
        with _oserror(), self._dirfd(parent_inode) as dir_fd:
            self._touch_dir(parent_inode)
            fd = os.open(
                os.fsdecode(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                mode & ~ctx.umask, dir_fd=dir_fd,
            )  # fmt: skip
            os.close(fd)
            ino = self._register(dir_fd, os.fsdecode(name))
            self._new_file(ino)
            return self._open_handle(ino, flags), self._attr(ino)

    async def read(self, fh: Any, off: int, size: int) -> bytes:
        await self._gate()
        with _oserror():
            return os.pread(self.handles[fh][1], size, off)

    async def write(self, fh: Any, off: int, buf: bytes) -> int:
        await self._gate()
        ino, fd = self.handles[fh]
        with _oserror():
            self._touch_file(ino)
            return os.pwrite(fd, buf, off)

    async def flush(self, fh: Any) -> None:
        """Not gated: a killed process flushes its files on the way out (no durability)."""

    async def release(self, fh: Any) -> None:
        _, fd = self.handles.pop(fh)
        os.close(fd)

    async def fsync(self, fh: Any, datasync: bool) -> None:
        if await self._sync_point():
            self.snap_file.pop(self.handles[fh][0], None)

    async def statfs(self, ctx: Any) -> Any:
        await self._gate()
        out = pyfuse3.StatvfsData()
        st = os.statvfs(_proc(self.fds[pyfuse3.ROOT_INODE]))
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                     "f_ffree", "f_favail", "f_namemax"):  # fmt: skip
            setattr(out, name, getattr(st, name))
        return out


async def _control(fs: CrashFS, nursery: trio.Nursery) -> None:
    """Commands on stdin (module docstring); EOF or ``quit`` ends the filesystem."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buf = b""
    while True:
        data = await stdin.receive_some(4096)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd, _, arg = line.decode().strip().partition(" ")
            if cmd == "arm":
                fs.cut_at = fs.syncs + int(arg)
                fs.emit(f"armed {fs.cut_at}")
            elif cmd == "cut":
                fs.cut()
            elif cmd == "release":
                fs.thaw.set()
            elif cmd == "count":
                fs.emit(f"count {fs.syncs}")
            elif cmd == "quit":
                nursery.cancel_scope.cancel()
                return
    nursery.cancel_scope.cancel()


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    backing, mountpoint, state, output = argv
    fs = CrashFS(backing, state, output, _emit)
    options = set(pyfuse3.default_options)
    options.discard("default_permissions")
    options |= {"fsname=crashfs", "allow_other"}
    pyfuse3.init(fs, mountpoint, options)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pyfuse3.main)
            nursery.start_soon(_control, fs, nursery)
            _emit("mounted")

    try:
        trio.run(run)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main(sys.argv[1:])
