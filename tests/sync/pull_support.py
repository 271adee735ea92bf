"""Helpers for the puller tests: a remote file, a block source in memory, a Puller."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from p2psync.fs import write_all
from p2psync.fs.base import FileSystem
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, LocalFileInfo, block_size_for
from p2psync.scanner.blocks import hash_bytes
from p2psync.sync.pull import BatchResult, Puller, PullTunings
from p2psync.sync.versioner import NoVersioning

LOCAL = bytes(range(32))
LOCAL_SHORT = int.from_bytes(LOCAL[:8], "big")
REMOTE_SHORT = 0x1234_5678_9ABC_DEF0
FOLDER = "default"


class Source:
    """A peer serving blocks from memory; ``corrupt``/``refuse`` name files it gets wrong."""

    def __init__(self, blocks: dict[bytes, bytes]) -> None:
        self.blocks = blocks
        self.corrupt: set[str] = set()
        self.refuse: set[str] = set()
        self.requests: list[str] = []

    async def request(self, folder: str, name: str, offset: int, size: int, hash: bytes) -> bytes:
        await trio.lowlevel.checkpoint()
        self.requests.append(name)
        if name in self.refuse:
            raise RuntimeError("peer answered NO_SUCH_FILE")
        data = self.blocks[hash]
        return bytes([data[0] ^ 0xFF]) + data[1:] if name in self.corrupt else data

    async def request_many(
        self, folder: str, wanted: Sequence[tuple[str, int, int, bytes]]
    ) -> list[bytes | Exception]:
        """Each block through ``request`` (side by side, as a real peer answers them)."""
        results: list[bytes | Exception] = [b""] * len(wanted)

        async def one(i: int, name: str, offset: int, size: int, hash: bytes) -> None:
            try:
                results[i] = await self.request(folder, name, offset, size, hash)
            except Exception as exc:
                results[i] = exc

        async with trio.open_nursery() as nursery:
            for i, block in enumerate(wanted):
                nursery.start_soon(one, i, *block)
        return results


def remote_file(name: str, data: bytes) -> FileInfo:
    size = block_size_for(len(data))
    return FileInfo(
        name=name,
        size=len(data),
        permissions=0o640,
        modified_ns=1_700_000_000_123_456_789,
        modified_by=REMOTE_SHORT,
        version=vector.make([(REMOTE_SHORT, 1)]),
        block_size=size,
        blocks=hash_bytes(data, size),
    )


def make_puller(
    fs: FileSystem,
    index: IndexStore,
    *sources: Source,
    tunings: PullTunings | None = None,
) -> Puller:
    async def sources_for(name: str) -> list[Source]:
        return list(sources)

    async def sources_for_many(names: list[str]) -> dict[str, list[Source]]:
        return {name: list(sources) for name in names}

    puller = Puller(
        folder=FOLDER,
        fs=fs,
        index=index,
        versioner=NoVersioning(),
        limiter=trio.CapacityLimiter(4),
        sources_for=sources_for,
        sources_for_many=sources_for_many,  # type: ignore[arg-type]
        defer_records=True,
        **({"tunings": tunings} if tunings is not None else {}),
    )
    return puller


async def pull_small_files(puller: Puller, files: Sequence[FileInfo], **kwargs: Any) -> BatchResult:
    """Pull ``files`` as one batch of small files (``Puller.pull_batch``)."""
    return await puller.pull_batch(files, **kwargs)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".p2psync.")]


def payloads(count: int) -> dict[str, bytes]:
    return {f"d{i % 3}/sub/f{i:03}.txt": os.urandom(100 + 37 * i) for i in range(count)}


def source_for(files: dict[str, bytes]) -> Source:
    return Source({hashlib.sha256(d).digest(): d for d in files.values()})


def local_file(fs: FileSystem, index: IndexStore, name: str, data: bytes) -> LocalFileInfo:
    """Write ``name`` and record it in the index as the scanner would (its inode, mode and
    mtime as on disk); returns the record."""
    write_all(fs, name, data)
    st = fs.lstat(name)
    size = block_size_for(len(data))
    fi = LocalFileInfo(
        name=name,
        size=len(data),
        permissions=st.permissions,
        modified_ns=st.mtime_ns,
        modified_by=LOCAL_SHORT,
        version=vector.make([(LOCAL_SHORT, 1)]),
        block_size=size,
        blocks=hash_bytes(data, size),
        inode=st.inode,
    )
    index.update_local(FOLDER, [fi])
    found = index.get_local(FOLDER, name)
    assert found is not None
    return found
