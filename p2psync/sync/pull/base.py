"""What every pull stage shares: the folder's settings, how an item can fail, where blocks
come from, and the counters."""

from __future__ import annotations

import base64
import datetime as dt
import errno
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import trio

from ...errors import UnsafePathError
from ...fs.base import FileSystem
from ...index.store import IndexStore
from ...protocol.fileinfo import BlockInfo, FileInfo, FileType
from ...scanner.ignore import Ignore
from ..versioner import Versioner
from .tunings import DEFAULT_TUNINGS, PullTunings

T = TypeVar("T")

DISK_FULL = "insufficient disk space"
INTERNAL_NAME = "one of p2psync's own names (in any case); never synced"


class BlockSource(Protocol):
    """A connected peer that can serve blocks (net.peer.PeerConnection)."""

    async def request(
        self, folder: str, name: str, offset: int, size: int, hash: bytes
    ) -> bytes: ...

    async def request_many(
        self, folder: str, wanted: Sequence[tuple[str, int, int, bytes]]
    ) -> Sequence[bytes | Exception]:
        """Several blocks, each (name, offset, size, hash), with one wait; each result is
        the data or the exception saying why it is missing."""
        ...


SourcesFor = Callable[[str], Awaitable[Sequence[BlockSource]]]
SourcesForMany = Callable[[list[str]], Awaitable[dict[str, Sequence[BlockSource]]]]


class ItemSkipped(Exception):
    """The item cannot be applied now; ``reason`` says why (shown to the user).

    ``rescan``: the disk changed under us, rescan the name. ``retry_soon``: another item of
    the same pull (e.g. deleting a directory's contents) may unblock it. ``kept``: the item
    can never be applied here and is kept as "not synced here" (``Puller.keep_not_synced``,
    called by the pull round): not an error, not retried until a peer sends a new version.
    """

    def __init__(
        self, reason: str, *, rescan: bool = False, retry_soon: bool = False, kept: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rescan = rescan
        self.retry_soon = retry_soon
        self.kept = kept


class WaitForSpace(Exception):
    """The file fits on the disk alone, but not next to the files being written now: it
    waits for them (``SpaceClaims.wait``) instead of failing."""


@dataclass
class PullStats:
    blocks_local: int = 0
    blocks_network: int = 0
    bytes_network: int = 0
    items_done: int = 0
    conflicts: int = 0
    renames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_blocks(self, *, local: int = 0, network: int = 0, network_bytes: int = 0) -> None:
        """Add to the block statistics (from any thread)."""
        with self._lock:
            self.blocks_local += local
            self.blocks_network += network
            self.bytes_network += network_bytes


@dataclass
class PullSettings:
    """One folder's pull settings; ``versioner``, ``ignore_permissions`` and
    ``max_conflicts`` follow the folder's config while it runs."""

    folder: str
    fs: FileSystem
    index: IndexStore
    versioner: Versioner
    limiter: trio.CapacityLimiter
    ignore_permissions: bool = False
    max_conflicts: int = 10
    clock: Callable[[], dt.datetime] = dt.datetime.now
    tunings: PullTunings = DEFAULT_TUNINGS
    ignore: Callable[[], Ignore] = Ignore  # the patterns loaded last: (?d) may be removed

    async def in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def keeps_permissions(self, fi: FileInfo) -> bool:
        """Are ``fi``'s permissions applied here?"""
        return not self.ignore_permissions and not fi.no_permissions


def short_str_of(short_id: int) -> str:
    """The 7-character form of a device from its short ID (the first 7 base32 chars of
    the device ID only depend on its first 35 bits)."""
    return base64.b32encode(short_id.to_bytes(8, "big")).decode("ascii")[:7]


def same_blocks(a: FileInfo, b: FileInfo) -> bool:
    return a.size == b.size and [x.hash for x in a.blocks] == [y.hash for y in b.blocks]


def blocks_by_place(cur: FileInfo | None) -> dict[tuple[int, bytes], BlockInfo]:
    """The blocks of the local file ``cur`` by (offset, hash), for ``find_local``."""
    if cur is None or cur.deleted or cur.type != FileType.FILE:
        return {}
    return {(b.offset, b.hash): b for b in cur.blocks}


def skipped_for(exc: OSError | UnsafePathError, name: str) -> ItemSkipped:
    """What the user is told when applying ``name`` failed with ``exc``."""
    if isinstance(exc, UnsafePathError):
        return ItemSkipped(f"unsafe path: {exc}")
    if isinstance(exc, FileNotFoundError):
        return ItemSkipped(f"vanished while applying ({exc.strerror}); retrying later", rescan=True)
    if isinstance(exc, PermissionError):
        return ItemSkipped(f"permission denied: {exc.filename or name}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ItemSkipped(DISK_FULL)
    if exc.errno == errno.EROFS:
        return ItemSkipped("file system is read-only")
    if exc.errno in (errno.ENAMETOOLONG, errno.EILSEQ):  # valid for the peer's OS, not here
        return ItemSkipped(f"this filesystem cannot store the name ({exc.strerror})", kept=True)
    return ItemSkipped(f"{exc.strerror or exc}")
