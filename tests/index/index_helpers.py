"""Helpers for the index store tests: device IDs and FileInfo builders."""

from __future__ import annotations

import hashlib
import sqlite3

from p2psync.protocol import vector
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType

LOCAL = bytes([0xA1]) * 32
DEV_A = bytes([0xB2]) * 32
DEV_B = bytes([0xC3]) * 32
BLOCK = 128 * 1024


def block_hash(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def make_file(
    name: str,
    version: tuple[tuple[int, int], ...] = ((1, 1),),
    *,
    content: str | None = None,
    size: int = 10,
    **changes: object,
) -> FileInfo:
    """A regular file of ``size`` bytes whose blocks hash ``content`` (default: name)."""
    label = name if content is None else content
    blocks = []
    offset = 0
    while offset < size:
        n = min(BLOCK, size - offset)
        blocks.append(BlockInfo(offset, n, block_hash(f"{label}@{offset}")))
        offset += n
    fi = FileInfo(
        name=name,
        size=size,
        block_size=BLOCK,
        blocks=tuple(blocks),
        version=vector.make(version),
        modified_ns=1_700_000_000_000_000_000,
    )
    return fi.with_(**changes) if changes else fi


def make_dir(name: str, version: tuple[tuple[int, int], ...] = ((1, 1),), **changes: object):
    fi = FileInfo(
        name=name, type=FileType.DIRECTORY, permissions=0o755, version=vector.make(version)
    )
    return fi.with_(**changes) if changes else fi


def make_deleted(name: str, version: tuple[tuple[int, int], ...], **changes: object):
    fi = FileInfo(name=name, deleted=True, version=vector.make(version))
    return fi.with_(**changes) if changes else fi


_RECOUNT = """
SELECT folder, {scope}, SUM(deleted = 0 AND type = 0), SUM(deleted = 0 AND type = 1),
       SUM(deleted = 0 AND type = 4), SUM(deleted <> 0),
       SUM(CASE WHEN deleted = 0 THEN size ELSE 0 END)
FROM {table} WHERE {where} GROUP BY folder{group}
"""


def assert_counts_exact(conn: sqlite3.Connection) -> None:
    """The ``counts`` table equals a recount of the rows it summarises (every scope)."""
    want: dict[tuple[int, int], tuple[int, ...]] = {}
    for table, scope, where, group in (
        ("files", "device", "1", ", device"),
        ("globals", "0", "invalid = 0", ""),
        ("globals", "-1", "need IS NOT NULL", ""),
    ):
        sql = _RECOUNT.format(scope=scope, table=table, where=where, group=group)
        for folder, sc, *values in conn.execute(sql):
            want[(folder, sc)] = tuple(values)
    have = {
        (folder, scope): tuple(values)
        for folder, scope, *values in conn.execute(
            "SELECT folder, scope, files, directories, symlinks, deleted, bytes FROM counts"
        )
        if any(values)
    }
    assert have == want
