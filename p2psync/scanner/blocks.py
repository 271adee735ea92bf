"""Block hashing: a file's content as a list of SHA-256-identified blocks (BEP's BlockInfo).

Rules (Syncthing's, reference §4.6, so both hash the same content to the same blocks):
one block size per file, a power of two from 128 KiB to 16 MiB chosen by
``model.block_size_for`` (which keeps a file's previous size when it is still within a
factor of two); only the last block may be shorter. An empty file has exactly one block
``BlockInfo(0, 0, sha256(b""))``: Syncthing requires every non-deleted file to carry at
least one block, so we match it.

Everything here blocks and is CPU-heavy: run it in worker threads. hashlib releases the
GIL while hashing buffers larger than 2 KiB, so threads hashing different files really
use several cores.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import xxhash

from ..fs.base import FileStat, FileSystem, ReadHandle
from ..protocol.fileinfo import BlockInfo

EMPTY_BLOCK_HASH = hashlib.sha256(b"").digest()
EMPTY_FILE_BLOCKS = (BlockInfo(0, 0, EMPTY_BLOCK_HASH),)
READ_SIZE = 1 << 20  # bytes per read: large sequential reads, bounded memory per thread
SPLIT_HASH_BYTES = 64 << 20  # files this big are hashed by two threads


def hash_bytes(data: bytes, block_size: int) -> tuple[BlockInfo, ...]:
    """The blocks of an in-memory content (tests, small files, verification)."""
    if not data:
        return EMPTY_FILE_BLOCKS
    view = memoryview(data)
    blocks = []
    for offset in range(0, len(data), block_size):
        piece = view[offset : offset + block_size]
        blocks.append(BlockInfo(offset, len(piece), _sha256(piece)))
    return tuple(blocks)


def hash_stream(handle: ReadHandle, size: int, block_size: int) -> tuple[BlockInfo, ...] | None:
    """Hash ``size`` bytes of an open file in ``block_size`` blocks.

    Returns None if the file ends before ``size`` bytes: it shrank while we read. A file
    of SPLIT_HASH_BYTES or more is hashed by two threads, one per half: a single big
    file otherwise leaves the second core idle while the whole sync waits for its hash.
    """
    if size == 0:
        return EMPTY_FILE_BLOCKS
    if size <= block_size:  # one block: most files of a tree of small files
        data = handle.read_at(0, size)
        return (BlockInfo(0, size, _sha256(data)),) if len(data) == size else None
    if size < SPLIT_HASH_BYTES:
        return _hash_range(handle, 0, size, block_size)
    middle = size // 2 // block_size * block_size
    with ThreadPoolExecutor(1, thread_name_prefix="p2psync-hash-half") as helper:
        second = helper.submit(_hash_range, handle, middle, size, block_size)
        first = _hash_range(handle, 0, middle, block_size)
        rest = second.result()
    if first is None or rest is None:
        return None
    return first + rest


def _hash_range(
    handle: ReadHandle, start: int, end: int, block_size: int
) -> tuple[BlockInfo, ...] | None:
    """Hash bytes ``start:end`` (``start`` on a block boundary); None if the file is short.

    Reads whole multiples of the block size (about READ_SIZE) so blocks never straddle a
    read.
    """
    chunk = max(block_size, READ_SIZE // block_size * block_size)
    blocks: list[BlockInfo] = []
    offset = start
    while offset < end:
        want = min(chunk, end - offset)
        data = handle.read_at(offset, want)
        if len(data) != want:
            return None
        view = memoryview(data)
        for first in range(0, want, block_size):
            piece = view[first : first + block_size]
            blocks.append(BlockInfo(offset + first, len(piece), _sha256(piece)))
        offset += want
    return tuple(blocks)


def hash_file(
    fs: FileSystem, name: str, expected: FileStat, block_size: int
) -> tuple[BlockInfo, ...] | None:
    """Hash file ``name`` if, before and after reading, it still matches ``expected``.

    Returns None when the file changed under us (size, mtime or inode differ from what
    the walk saw, or it shrank mid-read): the caller must not record a half-old state.
    Raises OSError/UnsafePathError if the file cannot be opened (e.g. it vanished).
    """
    with fs.open_read(name) as handle:
        blocks = hash_stream(handle, expected.size, block_size)
        # One check after reading is enough: the open file is the walked one, unchanged,
        # only if it still has the walked inode, size and mtime once everything is read.
        if blocks is None or not _same_file(handle.stat(), expected):
            return None
    return blocks


def quick_digest(data: bytes) -> bytes:
    """A fast 128-bit non-cryptographic fingerprint (xxh3-128) of ``data``.

    Use it only where nobody can choose the input to collide on purpose: checking that
    a block copied from a *local* file (found through the block map) is still what the
    index recorded, or cheaply comparing local content before a full SHA-256 pass. A
    mismatch there means an accidental change, which xxh3-128 detects with a negligible
    miss chance at ~10x SHA-256's speed. Anything received from a peer, and every
    BlockInfo.hash we publish, stays SHA-256: a peer is an adversary.
    """
    return xxhash.xxh3_128_digest(data)


def quick_hash64(data: bytes) -> int:
    """xxh3-64 of ``data`` as an int (hash-table keys, dedupe hints); same caveats."""
    return xxhash.xxh3_64_intdigest(data)


def _sha256(data: memoryview | bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _same_file(now: FileStat, expected: FileStat) -> bool:
    return (
        now.size == expected.size
        and now.mtime_ns == expected.mtime_ns
        and now.inode == expected.inode
    )
