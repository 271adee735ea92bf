"""Serving block requests from a folder: only indexed, current, non-ignored, non-internal
files, read through no symlink, and only data that still matches the requested hash."""

from __future__ import annotations

import errno
import hashlib
import logging
from collections.abc import Callable

from ..errors import FilesystemError, UnsafePathError
from ..fs.base import FileSystem
from ..fs.internal import is_internal
from ..index.store import IndexStore
from ..protocol.messages import ErrorCode, Request
from ..protocol.model import FileInfo, FileType
from ..scanner.ignore import Ignore

log = logging.getLogger("p2psync.sync.serve")

CACHE_ENTRIES = 256


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
        self._cache: dict[str, FileInfo | None] = {}

    def clear_cache(self) -> None:
        self._cache = {}

    def read_block(self, req: Request) -> tuple[ErrorCode, bytes]:
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
        except UnsafePathError:
            log.warning("%s: refused request for %r through a symlink", self.id, req.name)
            return ErrorCode.NO_SUCH_FILE, b""
        except (OSError, FilesystemError) as exc:
            if getattr(exc, "errno", None) in (errno.ENOENT, errno.ENOTDIR):
                return ErrorCode.NO_SUCH_FILE, b""
            return ErrorCode.GENERIC, b""
        if hashlib.sha256(data).digest() != req.hash:
            return ErrorCode.INVALID_FILE, b""
        return ErrorCode.NO_ERROR, data


def has_block(fi: FileInfo, offset: int, size: int, hash: bytes) -> bool:
    """Does ``fi`` hold exactly this block? O(1) for the usual regular layout."""
    if fi.block_size and offset % fi.block_size == 0:
        i = offset // fi.block_size
        if i < len(fi.blocks):
            b = fi.blocks[i]
            if b.offset == offset:
                return b.size == size and b.hash == hash
    return any(b.offset == offset and b.size == size and b.hash == hash for b in fi.blocks)
