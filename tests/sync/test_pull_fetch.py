"""Stage fetch (sync/pull/fetch.py) on the fake filesystem: blocks come from this device
first — the old file, a file written earlier in the page, any indexed file — and only then
from peers, spread over them and falling back to the others."""

from __future__ import annotations

import pytest
from pull_support import Source, local_file, make_puller, remote_file, source_for

from p2psync.fs import FakeFS, read_all, write_all
from p2psync.index import IndexStore
from p2psync.sync.pull import ItemSkipped
from p2psync.sync.pull.block_io import BlockReaders
from p2psync.sync.pull.fetch import Gathered

DATA = b"block content " * 100


def test_a_block_is_found_in_any_indexed_local_file_and_verified(index: IndexStore) -> None:
    fs = FakeFS()
    local_file(fs, index, "elsewhere.txt", DATA)
    local = make_puller(fs, index).local
    [block] = remote_file("new.txt", DATA).blocks
    with BlockReaders(fs) as readers:
        assert local.find("new.txt", block, {}, readers) == DATA
        assert local.find("new.txt", block, {}, readers, indexed=set()) is None  # not asked
    write_all(fs, "elsewhere.txt", b"X" * len(DATA))  # changed since indexed
    with BlockReaders(fs) as readers:
        assert local.find("new.txt", block, {}, readers) is None


def test_a_file_written_earlier_in_the_page_lends_its_blocks(index: IndexStore) -> None:
    fs = FakeFS()
    puller = make_puller(fs, index)
    written = remote_file("first.txt", DATA)
    write_all(fs, "first.txt", DATA)
    puller.recorder.record(written, fs.lstat("first.txt"))  # deferred: not in the block map
    [block] = remote_file("second.txt", DATA).blocks
    with BlockReaders(fs) as readers:
        assert puller.local.find("second.txt", block, {}, readers) == DATA


async def test_a_batch_falls_back_to_another_peer_and_names_what_no_peer_had(
    index: IndexStore,
) -> None:
    fs = FakeFS()
    files = {"a.txt": b"a" * 100, "b.txt": b"b" * 100}
    refusing, serving = source_for(files), source_for(files)
    refusing.refuse = set(files)
    puller = make_puller(fs, index, refusing, serving)
    wanted = [
        Gathered(fi, missing=list(fi.blocks)) for fi in map(remote_file, files, files.values())
    ]
    await puller.peers.fetch_batch(wanted)
    assert [(g.failure, [d for _, d in g.data]) for g in wanted] == [
        ("", [files["a.txt"]]),
        ("", [files["b.txt"]]),
    ]
    serving.refuse = set(files)
    again = [
        Gathered(fi, missing=list(fi.blocks)) for fi in map(remote_file, files, files.values())
    ]
    await puller.peers.fetch_batch(again)
    assert all(g.failure == "peer answered NO_SUCH_FILE" and not g.data for g in again)


async def test_a_big_file_skips_a_peer_whose_block_fails_its_hash(index: IndexStore) -> None:
    fs = FakeFS()
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: several blocks
    fi = remote_file("big.bin", data)
    blocks = {b.hash: data[b.offset : b.offset + b.size] for b in fi.blocks}
    corrupt, good = Source(blocks), Source(blocks)
    corrupt.corrupt = {"big.bin"}
    puller = make_puller(fs, index, corrupt, good)
    with fs.open_write("big.tmp") as handle:
        await puller.peers.fetch_file(handle, fi, list(fi.blocks))
    assert read_all(fs, "big.tmp") == data
    assert puller.stats.blocks_network == len(fi.blocks)
    good.corrupt = {"big.bin"}
    with fs.open_write("again.tmp") as handle, pytest.raises(ItemSkipped) as caught:
        await puller.peers.fetch_file(handle, fi, list(fi.blocks))
    assert "failed its hash check" in caught.value.reason


async def test_no_connected_peer_means_the_file_waits(index: IndexStore) -> None:
    fs = FakeFS()
    fi = remote_file("a.bin", b"x" * 10)
    with fs.open_write("a.tmp") as handle, pytest.raises(ItemSkipped) as caught:
        await make_puller(fs, index).peers.fetch_file(handle, fi, list(fi.blocks))
    assert caught.value.reason == "no connected device has this version"
