"""Block I/O for pulls: reading blocks already on this device and writing fetched ones,
every block verified against its hash.

- A pull looks for each block of a file locally before asking a peer: in the old version
  of the same file, in a file written earlier in the same pull, or anywhere the block map
  says. ``BlockReaders`` keeps the files it opens open for one such pass, so a 1 GiB file
  with 4,096 blocks costs one open of its old version, not 4,096.
- ``BlockWrites`` verifies and writes the blocks fetched for one file in batches: one
  worker-thread hop for all the blocks that arrived while the last batch was written,
  instead of one hop per block (hops dominated the receiver's CPU with 256 KiB blocks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import trio

from ...errors import FilesystemError
from ...fs.base import FileSystem, ReadHandle, WriteHandle
from ...fs.internal import is_internal
from ...protocol.fileinfo import BlockInfo

MAX_OPEN = 8
WRITE_WORKERS = 2  # hashing a batch uses one core; two writers keep both busy
WRITE_BATCH_BYTES = 8 * 1024 * 1024
WRITE_QUEUE = 64  # blocks waiting to be written (the default for BlockWrites)


def block_matches(block: BlockInfo, data: bytes) -> bool:
    """Is ``data`` exactly ``block``'s content (size and SHA-256)?"""
    return len(data) == block.size and hashlib.sha256(data).digest() == block.hash


def read_verified(handle: ReadHandle, block: BlockInfo) -> bytes | None:
    """``block``'s bytes from ``handle`` if they are all there and match its hash."""
    data = handle.read_at(block.offset, block.size)
    return data if block_matches(block, data) else None


def write_if_valid(handle: WriteHandle, block: BlockInfo, data: bytes) -> bool:
    """Write ``data`` at ``block``'s place if it is the block's content; False if not."""
    if not block_matches(block, data):
        return False
    handle.write_at(block.offset, data)
    return True


def write_all_if_valid(handle: WriteHandle, blocks: list[tuple[BlockInfo, bytes]]) -> list[bool]:
    return [write_if_valid(handle, block, data) for block, data in blocks]


@dataclass(eq=False)
class _Pending:
    block: BlockInfo
    data: bytes
    done: trio.Event = field(default_factory=trio.Event)
    written: bool = False


InThread = Callable[..., Awaitable[Any]]


class BlockWrites:
    """Fetched blocks of one file, verified and written in batches on worker threads.

    ``run`` lives in a nursery next to the fetching tasks; ``write`` waits until its block
    is written (True) or failed its hash check (False). An OS error while writing (a full
    disk) is kept in ``error``, fails every waiting block and cancels ``on_error``.
    """

    def __init__(
        self,
        handle: WriteHandle,
        in_thread: InThread,
        on_error: trio.CancelScope,
        capacity: int = WRITE_QUEUE,
    ):
        self._handle = handle
        self._in_thread = in_thread
        self._on_error = on_error
        # ``capacity``: the fetcher's requests in flight, so a fetched block never waits
        # to be queued, and memory stays bounded whatever the caller does.
        self._send, self._receive = trio.open_memory_channel[_Pending](capacity)
        self.error: OSError | FilesystemError | None = None

    async def write(self, block: BlockInfo, data: bytes) -> bool:
        pending = _Pending(block, data)
        try:
            self._send.send_nowait(pending)  # the usual case: no extra checkpoint per block
        except trio.WouldBlock:
            await self._send.send(pending)
        await pending.done.wait()
        return pending.written

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(WRITE_WORKERS):
                nursery.start_soon(self._worker)

    async def _worker(self) -> None:
        while True:
            batch = [await self._receive.receive()]
            size = len(batch[0].data)
            while size < WRITE_BATCH_BYTES:
                try:
                    pending = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(pending)
                size += len(pending.data)
            try:
                if self.error is None:
                    results = await self._in_thread(
                        write_all_if_valid, self._handle, [(p.block, p.data) for p in batch]
                    )
                    for pending, written in zip(batch, results, strict=True):
                        pending.written = written
            except (OSError, FilesystemError) as exc:
                self.error = exc
                self._on_error.cancel()
            finally:
                for pending in batch:
                    pending.done.set()


class BlockReaders:
    """Read handles of local files for one pass of block lookups (one worker-thread job);
    at most ``MAX_OPEN`` stay open, and all are closed when the pass ends."""

    def __init__(self, fs: FileSystem) -> None:
        self._fs = fs
        self._open: dict[str, ReadHandle | None] = {}  # None: could not be opened

    def read(self, name: str, block: BlockInfo) -> bytes | None:
        """``block`` from file ``name``, verified, or None (missing, unreadable, changed)."""
        if is_internal(name):
            return None
        handle = self._handle(name)
        if handle is None:
            return None
        try:
            return read_verified(handle, block)
        except (OSError, FilesystemError):
            return None

    def _handle(self, name: str) -> ReadHandle | None:
        if name in self._open:
            return self._open[name]
        if len(self._open) >= MAX_OPEN:
            oldest = next(iter(self._open))
            stale = self._open.pop(oldest)
            if stale is not None:
                stale.close()
        try:
            handle: ReadHandle | None = self._fs.open_read(name)
        except (OSError, FilesystemError):
            handle = None
        self._open[name] = handle
        return handle

    def close(self) -> None:
        handles, self._open = list(self._open.values()), {}
        for handle in handles:
            if handle is not None:
                handle.close()

    def __enter__(self) -> BlockReaders:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
