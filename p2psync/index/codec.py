"""Pure conversions between FileInfo and index rows.

Rows of the local device decode to LocalFileInfo (``row_to_local``), with the inode and
local flags stored beside the entry; rows of other devices and of the global view to
FileInfo (``row_to_file``). Both are rebuilt from the same columns.

Names are stored as *path keys*: the UTF-8 bytes of the name. UTF-8 byte order (SQLite's
BINARY collation) equals Python's code-point order of ``str``, which is the order the
scanner's walk produces (scanner/walker.py sorts a subdirectory's contents at
``name + "/"``), so the scanner can merge-join the index against the disk. A parent
always sorts before everything under it.

Version vectors and the less-queried FileInfo fields are msgpack blobs. Block lists in
the usual layout (offsets i * block_size, every block full except the last) are stored as
the bare concatenation of their hashes; anything else as an explicit list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import msgpack

from ..errors import IndexError_
from ..protocol.fileinfo import BlockInfo, FileInfo, FileType, LocalFileInfo
from ..protocol.vector import Counter, Vector, make

T = TypeVar("T")

INT64_MAX = (1 << 63) - 1
UINT64_MASK = (1 << 64) - 1


def in_chunks(values: Iterable[T], size: int) -> Iterator[tuple[list[T], str]]:
    """``values`` in lists of at most ``size``, each with the ``?,?,...`` placeholders of
    an ``IN (...)`` clause for it (SQLite bounds the parameters of one statement)."""
    pending = list(values)
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


def name_key(name: str) -> bytes:
    """The sortable key of a folder-relative name."""
    if "\x00" in name:
        raise IndexError_(f"cannot index name {name!r}: it contains NUL")
    return name.encode("utf-8")


def key_name(key: bytes) -> str:
    return key.decode("utf-8")


def subtree_range(prefix: str) -> tuple[bytes, bytes, bytes]:
    """(exact key, low, high): a name is in the subtree of ``prefix`` if its key equals
    the exact key or lies in [low, high). An empty prefix means the whole folder."""
    if not prefix:
        return b"", b"", b"\xff" * 8  # no UTF-8 key starts with 0xff
    key = name_key(prefix.rstrip("/"))
    return key, key + b"/", key + b"0"  # "0" is the byte after "/"


def encode_vector(vector: Vector) -> bytes:
    flat: list[int] = []
    for c in make(vector):  # normalised, so equal vectors have equal blobs
        flat.extend((c.id, c.value))
    return msgpack.packb(flat)


def decode_vector(blob: bytes) -> Vector:
    flat = msgpack.unpackb(blob)
    return tuple(Counter(flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


def _regular_blocks(fi: FileInfo) -> bool:
    bs = fi.block_size
    if bs <= 0:
        return False
    for i, b in enumerate(fi.blocks):
        if b.offset != i * bs or b.size != min(bs, fi.size - b.offset) or len(b.hash) != 32:
            return False
    return sum(b.size for b in fi.blocks) == fi.size


def encode_blocks(fi: FileInfo) -> bytes | list[list[Any]]:
    if _regular_blocks(fi):
        return b"".join(b.hash for b in fi.blocks)
    return [[b.offset, b.size, b.hash] for b in fi.blocks]


def decode_blocks(
    packed: bytes | list[list[Any]], size: int, block_size: int
) -> tuple[BlockInfo, ...]:
    if isinstance(packed, bytes):
        return tuple(
            BlockInfo(
                offset=i * block_size,
                size=min(block_size, size - i * block_size),
                hash=packed[j : j + 32],
            )
            for i, j in enumerate(range(0, len(packed), 32))
        )
    return tuple(BlockInfo(offset=o, size=s, hash=h) for o, s, h in packed)


def encode_extra(fi: FileInfo) -> bytes:
    """The fields no query filters on, in one blob (the inode 0 for a FileInfo)."""
    return msgpack.packb(
        [
            fi.permissions,
            fi.modified_by,
            fi.no_permissions,
            fi.block_size,
            encode_blocks(fi),
            fi.symlink_target,
            fi.inode if type(fi) is LocalFileInfo else 0,
        ]
    )


def to_signed(value: int) -> int:
    """A uint64 as the int64 SQLite can store (two's complement)."""
    value &= UINT64_MASK
    return value - (1 << 64) if value > INT64_MAX else value


def to_unsigned(value: int) -> int:
    return value & UINT64_MASK


# The columns of the files table a full FileInfo or LocalFileInfo is rebuilt from, in
# this order.
FILE_COLUMNS = (
    "name, type, size, modified_ns, deleted, invalid, sequence, local_flags, version, extra"
)


def file_params(fi: FileInfo) -> tuple[Any, ...]:
    """Values for FILE_COLUMNS (the name as its key; no local flags for a FileInfo)."""
    return (
        name_key(fi.name),
        int(fi.type),
        fi.size,
        fi.modified_ns,
        int(fi.deleted),
        int(fi.invalid),
        fi.sequence,
        fi.local_flags if type(fi) is LocalFileInfo else 0,
        encode_vector(fi.version),
        encode_extra(fi),
    )


def row_to_file(row: tuple[Any, ...] | Any) -> FileInfo:
    """A FileInfo from a row selected as FILE_COLUMNS (the local bookkeeping left out:
    for another device's rows and the global view)."""
    fields, _inode, _flags = _decode_row(row)
    return FileInfo(*fields)


def row_to_local(row: tuple[Any, ...] | Any) -> LocalFileInfo:
    """A LocalFileInfo from a row of the local device selected as FILE_COLUMNS."""
    fields, inode, local_flags = _decode_row(row)
    return LocalFileInfo(*fields, inode, local_flags)


# FileInfo's fields in declaration order
_Fields = tuple[
    str, FileType, int, int, int, int, bool, bool, bool, Vector, int, int,
    tuple[BlockInfo, ...], str,
]  # fmt: skip


def _decode_row(row: tuple[Any, ...] | Any) -> tuple[_Fields, int, int]:
    """FileInfo's fields in declaration order (positional: the cheapest construction on
    this hot path), then the row's inode and local flags."""
    key, ftype, size, modified_ns, deleted, invalid, sequence, local_flags, version, extra = row
    perms, modified_by, no_perms, block_size, blocks, target, inode = msgpack.unpackb(extra)
    fields = (
        key_name(key), FileType(ftype), size, perms, modified_ns, modified_by,
        bool(deleted), bool(invalid), no_perms, decode_vector(version), sequence,
        block_size, decode_blocks(blocks, size, block_size), target,
    )  # fmt: skip
    return fields, inode, local_flags


# Enough of a FileInfo to rank it with p2psync/rules.py, without decoding blocks.
RANK_COLUMNS = (
    "files.device, files.type, files.size, files.modified_ns, files.deleted, files.invalid, "
    "files.version"
)


def row_to_rank_file(key: bytes, row: tuple[Any, ...]) -> FileInfo:
    _device, ftype, size, modified_ns, deleted, invalid, version = row
    return FileInfo(
        name=key_name(key),
        type=FileType(ftype),
        size=size,
        modified_ns=modified_ns,
        deleted=bool(deleted),
        invalid=bool(invalid),
        version=decode_vector(version),
    )
