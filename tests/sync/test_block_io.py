"""Block I/O for pulls (sync/pull/block_io.py): verified batch writes of fetched blocks and
reads of local blocks, on their own and through a large-file pull."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from pull_support import FOLDER, make_puller, remote_file, source_for

from p2psync.fs import BasicFS, FakeFS, read_all
from p2psync.fs.internal import temp_name
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import BlockInfo
from p2psync.scanner.scan import scan
from p2psync.sync.pull import DEFAULT_TUNINGS, DISK_FULL, ItemSkipped, PullTunings, block_io
from p2psync.sync.pull.block_io import BlockReaders, BlockWrites
from p2psync.sync.pull.fetch import LocalBlocks
from p2psync.sync.scan_round import IndexView

BLOCK = 128 * 1024


def blocks_of(data: bytes, size: int = BLOCK) -> list[BlockInfo]:
    return [
        BlockInfo(off, len(data[off : off + size]), hashlib.sha256(data[off : off + size]).digest())
        for off in range(0, len(data), size)
    ]


class CountingHops:
    def __init__(self) -> None:
        self.hops = 0

    async def __call__(self, fn: Any, *args: Any) -> Any:
        self.hops += 1
        return await trio.to_thread.run_sync(fn, *args)


async def write_all(writes: BlockWrites, items: list[tuple[BlockInfo, bytes]]) -> list[bool]:
    results: list[bool] = [False] * len(items)

    async def one(i: int) -> None:
        results[i] = await writes.write(*items[i])

    async with trio.open_nursery() as writers:
        async with trio.open_nursery() as nursery:
            writes._on_error = nursery.cancel_scope
            writers.start_soon(writes.run)
            for i in range(len(items)):
                nursery.start_soon(one, i)
        writers.cancel_scope.cancel()
    return results


async def test_blocks_that_arrive_together_share_one_thread_hop() -> None:
    fs = FakeFS()
    data = os.urandom(32 * BLOCK)
    blocks = blocks_of(data)
    hops = CountingHops()
    with fs.open_write("f") as handle:
        writes = BlockWrites(handle, hops, trio.CancelScope())
        items = [(b, data[b.offset : b.offset + b.size]) for b in blocks]
        assert await write_all(writes, items) == [True] * len(blocks)
    assert read_all(fs, "f") == data
    assert 1 <= hops.hops < len(blocks) // 4


async def test_the_write_queue_is_bounded_and_still_writes_every_block() -> None:
    """More blocks than the queue holds: the extra writers wait for room, none is lost."""
    fs = FakeFS()
    data = os.urandom(12 * BLOCK)
    blocks = blocks_of(data)
    with fs.open_write("f") as handle:
        writes = BlockWrites(handle, CountingHops(), trio.CancelScope(), capacity=2)
        items = [(b, data[b.offset : b.offset + b.size]) for b in blocks]
        assert await write_all(writes, items) == [True] * len(blocks)
        assert writes._send.statistics().max_buffer_size == 2
    assert read_all(fs, "f") == data


async def test_a_corrupt_block_is_refused_and_the_others_written() -> None:
    fs = FakeFS()
    data = os.urandom(4 * BLOCK)
    blocks = blocks_of(data)
    items = [(b, data[b.offset : b.offset + b.size]) for b in blocks]
    items[2] = (blocks[2], bytes([items[2][1][0] ^ 0xFF]) + items[2][1][1:])  # always differs
    with fs.open_write("f") as handle:
        writes = BlockWrites(handle, CountingHops(), trio.CancelScope())
        assert await write_all(writes, items) == [True, True, False, True]
    written = read_all(fs, "f")
    assert written[2 * BLOCK : 3 * BLOCK] != data[2 * BLOCK : 3 * BLOCK]
    assert written[3 * BLOCK :] == data[3 * BLOCK :]


async def test_a_write_error_is_kept_and_cancels_the_fetchers() -> None:
    fs = FakeFS()
    data = os.urandom(8 * BLOCK)
    blocks = blocks_of(data)

    def full_disk(name: str, offset: int) -> None:
        if offset >= 4 * BLOCK:
            raise OSError(errno.ENOSPC, "No space left on device", name)

    fs.write_hook = full_disk
    with fs.open_write("f") as handle:
        writes = BlockWrites(handle, CountingHops(), trio.CancelScope())
        with trio.fail_after(5):
            await write_all(writes, [(b, data[b.offset : b.offset + b.size]) for b in blocks])
    assert isinstance(writes.error, OSError) and writes.error.errno == errno.ENOSPC


def test_requests_in_flight_keep_sixteen_mib_moving() -> None:
    requests_in_flight = DEFAULT_TUNINGS.requests_in_flight
    assert requests_in_flight(16 * 1024 * 1024) == 16
    assert requests_in_flight(1024 * 1024) == 16
    assert requests_in_flight(256 * 1024) == 64
    assert requests_in_flight(128 * 1024) == 128


async def test_a_large_file_is_pulled_in_batched_writes(index: IndexStore) -> None:
    fs = FakeFS()
    files = {"big.bin": os.urandom(3 * 1024 * 1024 + 5)}
    source = source_for({})
    fi = remote_file("big.bin", files["big.bin"])
    source.blocks = {b.hash: files["big.bin"][b.offset : b.offset + b.size] for b in fi.blocks}
    puller = make_puller(fs, index, source)
    await puller.pull_item(fi)
    assert read_all(fs, "big.bin") == files["big.bin"]
    assert puller.stats.blocks_network == len(fi.blocks)


async def test_a_large_file_is_written_around_the_page_cache(
    fs: BasicFS, index: IndexStore
) -> None:
    bypassed: list[bool] = []
    real_open_write = fs.open_write

    def spying_open_write(name: str, **kwargs: Any) -> Any:
        handle = real_open_write(name, **kwargs)
        real_bypass = handle.bypass_cache

        def bypass() -> bool:
            bypassed.append(real_bypass())
            return bypassed[-1]

        handle.bypass_cache = bypass
        return handle

    fs.open_write = spying_open_write  # type: ignore[method-assign]
    data = os.urandom(3 * 1024 * 1024 + 5)  # a short last block: padded, then truncated
    fi = remote_file("big.bin", data)
    source = source_for({})
    source.blocks = {b.hash: data[b.offset : b.offset + b.size] for b in fi.blocks}
    puller = make_puller(fs, index, source, tunings=PullTunings(bypass_cache_min=1024 * 1024))
    await puller.pull_item(fi)
    assert bypassed == [True]
    assert (Path(fs.root) / "big.bin").read_bytes() == data
    assert puller.stats.blocks_network == len(fi.blocks)


async def test_a_disk_filling_up_mid_file_is_reported_as_a_full_disk(index: IndexStore) -> None:
    fs = FakeFS()
    data = os.urandom(3 * 1024 * 1024)
    fi = remote_file("big.bin", data)
    source = source_for({})
    source.blocks = {b.hash: data[b.offset : b.offset + b.size] for b in fi.blocks}

    def full_disk(name: str, offset: int) -> None:
        if offset >= 1024 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device", name)

    fs.write_hook = full_disk
    with pytest.raises(ItemSkipped) as caught:
        await make_puller(fs, index, source).pull_item(fi)
    assert caught.value.reason == DISK_FULL
    assert [e.name for e in fs.scandir("")] in ([], [temp_name("big.bin")])


def test_readers_open_each_file_once_and_verify_every_block(fs: BasicFS) -> None:
    data = os.urandom(6 * BLOCK)
    (Path(fs.root) / "old.bin").write_bytes(data)
    opened: list[str] = []
    real_open = fs.open_read

    def counting_open(name: str) -> Any:
        opened.append(name)
        return real_open(name)

    fs.open_read = counting_open  # type: ignore[method-assign]
    blocks = blocks_of(data)
    with BlockReaders(fs) as readers:
        assert [readers.read("old.bin", b) for b in blocks] == [
            data[b.offset : b.offset + b.size] for b in blocks
        ]
        wrong = BlockInfo(0, BLOCK, hashlib.sha256(b"other").digest())
        assert readers.read("old.bin", wrong) is None
        assert readers.read("missing.bin", blocks[0]) is None
        assert readers.read(temp_name("old.bin"), blocks[0]) is None  # internal: never read
    assert opened == ["old.bin", "missing.bin"]


def test_readers_keep_a_bounded_number_of_files_open(fs: BasicFS) -> None:
    names = [f"f{i}" for i in range(block_io.MAX_OPEN + 5)]
    for name in names:
        (Path(fs.root) / name).write_bytes(name.encode())
    fds_before = len(os.listdir("/proc/self/fd"))
    with BlockReaders(fs) as readers:
        for name in names:
            block = BlockInfo(0, len(name), hashlib.sha256(name.encode()).digest())
            assert readers.read(name, block) == name.encode()
            assert len(os.listdir("/proc/self/fd")) - fds_before <= block_io.MAX_OPEN
    assert len(os.listdir("/proc/self/fd")) == fds_before


@pytest.mark.parametrize("bypass", [False, True], ids=["page-cache", "direct"])
async def test_a_big_local_copy_is_split_between_threads_and_keeps_every_block(
    fs: BasicFS, index: IndexStore, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    """Blocks found locally are copied on FILL_THREADS threads; changed blocks in either
    part still come from the peer, and the file is exact (written through the page cache
    or around it)."""
    tunings = PullTunings(fill_split_min_blocks=4, bypass_cache_min=1 if bypass else 1 << 60)
    old = os.urandom(12 * BLOCK + 777)
    (Path(fs.root) / "big.bin").write_bytes(old)
    scanned = [
        fi
        for batch in scan(fs, IndexView(index, FOLDER), short_id=1, now=lambda: 1_700_000_000)
        for fi in batch.files
    ]
    index.update_local(FOLDER, scanned)
    new = bytearray(old)
    for changed in (1, 10):  # one block in each thread's part
        new[changed * BLOCK : changed * BLOCK + 5] = b"XXXXX"
    local = index.get_local(FOLDER, "big.bin")
    assert local is not None
    fi = remote_file("big.bin", bytes(new))
    fi = fi.with_(version=vector.make([*local.version, *fi.version]))  # a newer version
    source = source_for({})
    source.blocks = {b.hash: bytes(new[b.offset : b.offset + b.size]) for b in fi.blocks}
    parts: list[list[int]] = []
    real_fill = LocalBlocks.fill_range

    def spying_fill(self: Any, handle: Any, name: str, blocks: Any, *rest: Any) -> Any:
        parts.append([b.offset // BLOCK for b in blocks])
        return real_fill(self, handle, name, blocks, *rest)

    monkeypatch.setattr(LocalBlocks, "fill_range", spying_fill)
    puller = make_puller(fs, index, source, tunings=tunings)
    await puller.pull_item(fi)
    assert (Path(fs.root) / "big.bin").read_bytes() == bytes(new)
    assert puller.stats.blocks_network == 2
    assert puller.stats.blocks_local == len(fi.blocks) - 2
    assert sorted(parts) == [list(range(7)), list(range(7, 13))]  # two halves
    assert not [n for n in os.listdir(fs.root) if "conflict" in n]
