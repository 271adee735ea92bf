"""Writes around the page cache (O_DIRECT) for big temp files: same bytes on disk as
ordinary writes, falling back to them wherever direct I/O is refused."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from p2psync.fs import BasicFS, direct_io

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_DIRECT: Linux")
BLOCK = 128 * 1024


def _blocks(count: int, tail: int) -> list[tuple[int, bytes]]:
    out = [(i * BLOCK, os.urandom(BLOCK)) for i in range(count)]
    if tail:
        out.append((count * BLOCK, os.urandom(tail)))
    return out


@linux_only
@pytest.mark.parametrize("tail", [0, 1, 4095, 4096, 4097, BLOCK - 1])
def test_direct_writes_put_the_same_bytes_on_disk(tmp_path: Path, tail: int) -> None:
    fs = BasicFS(tmp_path)
    blocks = _blocks(5, tail)
    size = sum(len(d) for _, d in blocks)
    with fs.open_write("big.tmp") as handle:
        assert handle.bypass_cache() is True  # tmp_path is on a disk filesystem here
        for offset, data in reversed(blocks):  # any order, as fetched blocks arrive
            handle.write_at(offset, data)
        assert handle.read_at(BLOCK, BLOCK) == blocks[1][1]  # reads see direct writes
        handle.truncate(size)  # what Puller.seal does: the padding of the tail goes
        handle.fsync()
    assert (tmp_path / "big.tmp").read_bytes() == b"".join(d for _, d in blocks)


@linux_only
def test_an_unaligned_write_goes_the_ordinary_way(tmp_path: Path) -> None:
    fs = BasicFS(tmp_path)
    with fs.open_write("f") as handle:
        assert handle.bypass_cache()
        handle.write_at(0, b"a" * BLOCK)
        handle.write_at(100, b"middle")  # not on a 4 KiB boundary
        handle.truncate(BLOCK)
    assert (tmp_path / "f").read_bytes() == b"a" * 100 + b"middle" + b"a" * (BLOCK - 106)


def test_without_direct_io_the_writes_stay_ordinary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct_io, "_O_DIRECT", 0)  # a platform without O_DIRECT
    fs = BasicFS(tmp_path)
    with fs.open_write("f") as handle:
        assert handle.bypass_cache() is False
        handle.write_at(0, b"x" * 5000)
    assert (tmp_path / "f").read_bytes() == b"x" * 5000


@linux_only
def test_a_refused_direct_write_falls_back_without_losing_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite
    direct_fds: set[int] = set()
    real_open_direct = direct_io.open_direct

    def open_direct(fd: int) -> int | None:
        direct = real_open_direct(fd)
        if direct is not None:
            direct_fds.add(direct)
        return direct

    def pwrite(fd: int, data: object, offset: int) -> int:
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")  # e.g. a 64 KiB-sector device
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(direct_io, "open_direct", open_direct)
    monkeypatch.setattr(direct_io.os, "pwrite", pwrite)
    fs = BasicFS(tmp_path)
    blocks = _blocks(3, 10)
    with fs.open_write("f") as handle:
        assert handle.bypass_cache()
        for offset, data in blocks:
            handle.write_at(offset, data)
    assert (tmp_path / "f").read_bytes() == b"".join(d for _, d in blocks)


@linux_only
def test_other_write_errors_are_raised_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = BasicFS(tmp_path)
    with fs.open_write("f") as handle:
        assert handle.bypass_cache()

        def full(fd: int, data: object, offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(direct_io.os, "pwrite", full)
        with pytest.raises(OSError) as raised:
            handle.write_at(0, b"z" * BLOCK)
        assert raised.value.errno == errno.ENOSPC
