"""Block hashing against hashlib, change detection while hashing, and the xxhash helpers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from p2psync.fs import BasicFS, FakeFS, write_all
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE, BlockInfo
from p2psync.scanner import blocks as blocks_module
from p2psync.scanner.blocks import (
    EMPTY_BLOCK_HASH,
    READ_SIZE,
    hash_bytes,
    hash_file,
    quick_digest,
    quick_hash64,
)


def expected_blocks(data: bytes, block_size: int) -> tuple[BlockInfo, ...]:
    if not data:
        return (BlockInfo(0, 0, hashlib.sha256(b"").digest()),)
    return tuple(
        BlockInfo(
            off,
            len(data[off : off + block_size]),
            hashlib.sha256(data[off : off + block_size]).digest(),
        )
        for off in range(0, len(data), block_size)
    )


@pytest.mark.parametrize(
    "size", [0, 1, MIN_BLOCK_SIZE - 1, MIN_BLOCK_SIZE, MIN_BLOCK_SIZE + 1, 3 * MIN_BLOCK_SIZE + 5]
)
def test_hash_bytes_matches_hashlib(size: int) -> None:
    data = os.urandom(size)
    assert hash_bytes(data, MIN_BLOCK_SIZE) == expected_blocks(data, MIN_BLOCK_SIZE)


@pytest.mark.parametrize("block_size", [MIN_BLOCK_SIZE, 2 * READ_SIZE])
def test_hash_file_on_disk_crosses_read_chunks(tmp_path: Path, block_size: int) -> None:
    data = os.urandom(READ_SIZE * 2 + MIN_BLOCK_SIZE * 3 + 17)
    (tmp_path / "f").write_bytes(data)
    fs = BasicFS(tmp_path)
    blocks = hash_file(fs, "f", fs.lstat("f"), block_size)
    assert blocks == expected_blocks(data, block_size)


def test_empty_file_block() -> None:
    fs = FakeFS()
    write_all(fs, "e", b"")
    assert hash_file(fs, "e", fs.lstat("e"), MIN_BLOCK_SIZE) == (BlockInfo(0, 0, EMPTY_BLOCK_HASH),)


def test_stale_stat_means_changed() -> None:
    fs = FakeFS()
    write_all(fs, "f", b"abc", mtime_ns=10)
    seen = fs.lstat("f")
    write_all(fs, "f", b"xyz", mtime_ns=20)  # same size, new mtime after the walk
    assert hash_file(fs, "f", seen, MIN_BLOCK_SIZE) is None


def test_shrinking_while_reading_means_changed() -> None:
    fs = FakeFS()
    write_all(fs, "f", os.urandom(3 * READ_SIZE))
    seen = fs.lstat("f")

    def truncate_once(name: str, offset: int) -> None:
        if offset == READ_SIZE:
            with fs.open_write(name) as h:
                h.truncate(READ_SIZE + 10)

    fs.read_hook = truncate_once
    assert hash_file(fs, "f", seen, MIN_BLOCK_SIZE) is None


@pytest.mark.parametrize("extra", [0, 1, MIN_BLOCK_SIZE - 1])
def test_big_file_hashed_in_two_halves_matches_hashlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    monkeypatch.setattr(blocks_module, "SPLIT_HASH_BYTES", 4 * MIN_BLOCK_SIZE)
    data = os.urandom(7 * MIN_BLOCK_SIZE + extra)
    (tmp_path / "f").write_bytes(data)
    fs = BasicFS(tmp_path)
    assert hash_file(fs, "f", fs.lstat("f"), MIN_BLOCK_SIZE) == expected_blocks(
        data, MIN_BLOCK_SIZE
    )


def test_big_file_shrinking_in_its_second_half_means_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blocks_module, "SPLIT_HASH_BYTES", 2 * READ_SIZE)
    fs = FakeFS()
    write_all(fs, "f", os.urandom(4 * READ_SIZE))
    seen = fs.lstat("f")

    def truncate_at_second_half(name: str, offset: int) -> None:
        if offset == 2 * READ_SIZE:
            with fs.open_write(name) as h:
                h.truncate(2 * READ_SIZE + 10)

    fs.read_hook = truncate_at_second_half
    assert hash_file(fs, "f", seen, MIN_BLOCK_SIZE) is None


def test_big_file_read_error_in_the_helper_thread_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blocks_module, "SPLIT_HASH_BYTES", 2 * READ_SIZE)
    fs = FakeFS()
    write_all(fs, "f", os.urandom(4 * READ_SIZE))

    def fail_in_second_half(name: str, offset: int) -> None:
        if offset >= 2 * READ_SIZE:
            raise OSError(5, "Input/output error")

    fs.read_hook = fail_in_second_half
    with pytest.raises(OSError, match="Input/output"):
        hash_file(fs, "f", fs.lstat("f"), MIN_BLOCK_SIZE)


def test_quick_hashes() -> None:
    a = quick_digest(b"block one")
    assert len(a) == 16 and a == quick_digest(b"block one")
    assert a != quick_digest(b"block two")
    assert isinstance(quick_hash64(b"x"), int)
    assert quick_hash64(b"x") != quick_hash64(b"y")
