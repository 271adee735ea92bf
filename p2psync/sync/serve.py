"""Serving block requests from a folder: only indexed, current, non-ignored, non-internal
files, read through no symlink, and only data that still matches the requested hash
(checked by SHA-256 only where the file changed since its scan: ``still_indexed``).

Requests that arrive together are read together: ``ServeQueue`` workers take every queued
request (up to a count and byte bound) into one worker-thread job, so a peer pulling a
thousand small files costs tens of thread hand-offs here, not a thousand.
"""

from __future__ import annotations

import errno
import hashlib
import logging
from collections.abc import Callable, Sequence

import trio

from ..errors import FilesystemError, IndexError_, UnsafePathError
from ..fs.base import FileStat, FileSystem
from ..fs.internal import is_internal
from ..index.store import IndexStore
from ..protocol.fileinfo import FileInfo, FileType, LocalFileInfo
from ..protocol.messages import ErrorCode, Request, Response
from ..resource_faults import RESOURCE_ERRORS, describe
from ..scanner.ignore import Ignore
from .plan import metadata_matches

log = logging.getLogger("p2psync.sync.serve")

CACHE_ENTRIES = 256
SERVE_WORKERS = 4  # batches read at once (disk and hashing overlap across threads)
BATCH_REQUESTS = 64
BATCH_BYTES = 1024 * 1024
QUEUED_SLOTS = 1024  # requests (or request_many calls) waiting for a worker

Result = tuple[ErrorCode, bytes]


class BlockServer:
    """Reads requested blocks (blocking: call from a worker thread)."""

    def __init__(
        self, folder: str, fs: FileSystem, index: IndexStore, get_ignore: Callable[[], Ignore]
    ) -> None:
        self.id = folder
        self.fs = fs
        self.index = index
        self.get_ignore = get_ignore
        # name -> local FileInfo, so a file's entry is not decoded once per request;
        # cleared whenever the local index changes.
        self._cache: dict[str, LocalFileInfo | None] = {}

    def clear_cache(self) -> None:
        self._cache = {}

    def read_blocks(self, requests: Sequence[Request]) -> list[Result]:
        self._look_up([r.name for r in requests])
        with self.fs.cached_dirs():
            return [self.read_block(req) for req in requests]

    def _look_up(self, names: list[str]) -> None:
        """Put the local entries of a batch's names in the cache with one query."""
        missing = [name for name in dict.fromkeys(names) if name not in self._cache]
        if len(missing) < 2:
            return
        try:
            found = self.index.get_local_many(self.id, missing)
        except IndexError_:
            return  # a name the index cannot hold: read_block finds out per request
        if len(self._cache) + len(missing) > CACHE_ENTRIES:
            self._cache = {}
        for name in missing:
            self._cache[name] = found.get(name)

    def read_block(self, req: Request) -> Result:
        if is_internal(req.name) or self.get_ignore().is_ignored(req.name):
            log.warning("%s: refused request for internal/ignored %r", self.id, req.name)
            return ErrorCode.NO_SUCH_FILE, b""
        cache = self._cache
        if req.name in cache:
            cur = cache[req.name]
        else:
            cur = self.index.get_local(self.id, req.name)
            if len(cache) > CACHE_ENTRIES:
                cache.clear()
            cache[req.name] = cur
        if cur is None or cur.deleted or cur.type != FileType.FILE or cur.invalid:
            return ErrorCode.NO_SUCH_FILE, b""
        if not has_block(cur, req.offset, req.size, req.hash):
            return ErrorCode.INVALID_FILE, b""
        try:
            with self.fs.open_read(req.name) as handle:
                data = handle.read_at(req.offset, req.size)
                unchanged = still_indexed(handle.stat(), cur)
        except UnsafePathError:
            log.warning("%s: refused request for %r through a symlink", self.id, req.name)
            return ErrorCode.NO_SUCH_FILE, b""
        except (OSError, FilesystemError) as exc:
            if getattr(exc, "errno", None) in (errno.ENOENT, errno.ENOTDIR):
                return ErrorCode.NO_SUCH_FILE, b""
            return ErrorCode.GENERIC, b""
        if len(data) != req.size:
            return ErrorCode.INVALID_FILE, b""
        if not unchanged and hashlib.sha256(data).digest() != req.hash:
            return ErrorCode.INVALID_FILE, b""
        return ErrorCode.NO_ERROR, data


def still_indexed(st: FileStat, fi: LocalFileInfo) -> bool:
    """Is the open file, after reading from it, still exactly the one the index recorded
    (same inode, size and modification time)? Then its blocks are the recorded ones and
    need no hashing here: this is the test the scanner itself uses to decide that a file
    has not changed, and the receiver verifies every block's SHA-256 anyway. A file that
    changed since its scan (or whose inode was not recorded) is hashed block by block."""
    return bool(fi.inode) and metadata_matches(
        fi,
        size=st.size,
        mtime_ns=st.mtime_ns,
        inode=st.inode,
        permissions=st.permissions,
        ignore_perms=True,  # permissions do not change content
    )


def has_block(fi: FileInfo, offset: int, size: int, hash: bytes) -> bool:
    """Does ``fi`` hold exactly this block? O(1) for the usual regular layout."""
    if fi.block_size and offset % fi.block_size == 0:
        i = offset // fi.block_size
        if i < len(fi.blocks):
            b = fi.blocks[i]
            if b.offset == offset:
                return b.size == size and b.hash == hash
    return any(b.offset == offset and b.size == size and b.hash == hash for b in fi.blocks)


class _Slot:
    """Requests that arrived together, waiting for a worker."""

    __slots__ = ("done", "requests", "results", "size")

    def __init__(self, requests: Sequence[Request]) -> None:
        self.requests = requests
        self.size = sum(r.size for r in requests)
        self.done = trio.Event()
        self.results: list[Result] = [(ErrorCode.GENERIC, b"")] * len(requests)


class ServeQueue:
    """Batches block requests for a BlockServer; ``serve`` lives in the folder's nursery."""

    def __init__(
        self,
        server: BlockServer,
        limiter: trio.CapacityLimiter,
        *,
        workers: int = SERVE_WORKERS,
        queued: int = QUEUED_SLOTS,
    ) -> None:
        self.server = server
        self.limiter = limiter
        self._workers = workers
        self._queued = queued
        # Open while ``serve`` runs; a full queue makes requesters wait (back-pressure on
        # the peers' connections) instead of growing without bound.
        self._send: trio.MemorySendChannel[_Slot] | None = None

    async def answer(
        self, requests: Sequence[Request], rescan: Callable[[list[str]], None]
    ) -> list[Response]:
        """A peer's block requests answered (read together); the names of blocks that no
        longer match the index go to ``rescan``."""
        results = await self.read_many(requests)
        stale = [
            r.name
            for r, (code, _) in zip(requests, results, strict=True)
            if code == ErrorCode.INVALID_FILE
        ]
        if stale:
            rescan(stale)
        return [
            Response(id=r.id, data=data, code=code)
            for r, (code, data) in zip(requests, results, strict=True)
        ]

    async def read(self, request: Request) -> Result:
        return (await self.read_many([request]))[0]

    async def read_many(self, requests: Sequence[Request]) -> list[Result]:
        """The result of each request, in order (GENERIC for any the queue could not
        serve because it stopped)."""
        if not requests:
            return []
        send = self._send
        if send is None:  # the folder is not running (yet): one hop
            return await trio.to_thread.run_sync(
                self.server.read_blocks, list(requests), limiter=self.limiter
            )
        slot = _Slot(requests)
        try:
            try:
                send.send_nowait(slot)
            except trio.WouldBlock:  # the queue is full: wait for room
                await send.send(slot)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return slot.results  # the queue stopped meanwhile: GENERIC for each
        await slot.done.wait()
        return slot.results

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The workers; reports started once requests go to them (``nursery.start``)."""
        send, receive = trio.open_memory_channel[_Slot](self._queued)
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self._workers):
                    nursery.start_soon(self._worker, receive)
                self._send = send
                task_status.started()
        finally:
            self._send = None
            while True:  # whoever still waits gets an error, not a hang
                try:
                    receive.receive_nowait().done.set()
                except trio.WouldBlock:
                    break
            receive.close()  # and whoever waits to queue is told it stopped

    async def _worker(self, receive: trio.MemoryReceiveChannel[_Slot]) -> None:
        while True:
            batch = [await receive.receive()]
            count, size = len(batch[0].requests), batch[0].size
            while count < BATCH_REQUESTS and size < BATCH_BYTES:
                try:
                    slot = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(slot)
                count += len(slot.requests)
                size += slot.size
            try:
                results = await trio.to_thread.run_sync(
                    self.server.read_blocks,
                    [r for slot in batch for r in slot.requests],
                    limiter=self.limiter,
                )
                at = 0
                for slot in batch:
                    slot.results = results[at : at + len(slot.requests)]
                    at += len(slot.requests)
            except RESOURCE_ERRORS as exc:  # e.g. no file handle for an index reader
                log.warning(
                    "%s: could not serve %d blocks: %s", self.server.id, count, describe(exc)
                )  # the slots keep their GENERIC answers; serving goes on
            finally:
                for slot in batch:
                    slot.done.set()
