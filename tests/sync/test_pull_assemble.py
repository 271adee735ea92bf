"""Stage assemble and verify (sync/pull/assemble.py) on the fake filesystem: the temp
file, its blocks written only when they match their hash, sealed with its metadata."""

from __future__ import annotations

import os

from pull_support import make_puller, remote_file

from p2psync.fs import FakeFS, read_all, write_all
from p2psync.fs.internal import temp_name
from p2psync.index import IndexStore
from p2psync.protocol.fileinfo import FileType


def test_blocks_are_written_until_one_fails_its_hash(index: IndexStore) -> None:
    fs = FakeFS()
    data = os.urandom(300_000)
    fi = remote_file("f.bin", data)
    assert len(fi.blocks) > 2
    assemble = make_puller(fs, index).assemble
    good = [(b, data[b.offset : b.offset + b.size]) for b in fi.blocks]
    with assemble.open_temp(temp_name("f.bin")) as handle:
        assert assemble.write_blocks(handle, good)
        assemble.seal(fi, handle)
    assert read_all(fs, temp_name("f.bin")) == data
    flipped = bytes([good[1][1][0] ^ 0xFF]) + good[1][1][1:]  # always differs
    bad = [*good[:1], (good[1][0], flipped), *good[2:]]
    with assemble.open_temp(temp_name("g.bin")) as handle:
        assert not assemble.write_blocks(handle, bad)
    assert read_all(fs, temp_name("g.bin")) == good[0][1]  # nothing after the bad block


def test_a_sealed_temp_file_has_the_final_size_mode_and_mtime(index: IndexStore) -> None:
    fs = FakeFS()
    fi = remote_file("f.txt", b"12345")
    puller = make_puller(fs, index)
    with puller.assemble.open_temp(temp_name("f.txt")) as handle:
        handle.write_at(0, b"1234567890")  # longer: an earlier attempt's leftovers
        puller.assemble.seal(fi, handle)
    st = fs.lstat(temp_name("f.txt"))
    assert (st.size, st.permissions, st.mtime_ns) == (5, 0o640, fi.modified_ns)
    puller.ignore_permissions = True
    with puller.assemble.open_temp(temp_name("f.txt")) as handle:
        puller.assemble.seal(fi, handle)
    assert fs.lstat(temp_name("f.txt")).permissions == 0o644


def test_a_directory_in_the_temp_files_place_is_cleared(index: IndexStore) -> None:
    fs = FakeFS()
    fs.mkdir(temp_name("f.txt"))
    with make_puller(fs, index).assemble.open_temp(temp_name("f.txt")) as handle:
        handle.write_at(0, b"x")
    assert fs.lstat(temp_name("f.txt")).type == FileType.FILE


def test_only_verified_blocks_of_an_interrupted_temp_file_are_reused(index: IndexStore) -> None:
    fs = FakeFS()
    data = os.urandom(300_000)
    fi = remote_file("f.bin", data)
    first, second = fi.blocks[0], fi.blocks[1]
    partial = bytearray(data[: second.offset + second.size])
    partial[second.offset] ^= 0xFF  # the second block was torn
    write_all(fs, temp_name("f.bin"), bytes(partial))
    found = make_puller(fs, index).assemble.partial_temp(fi)
    assert found == {first.offset: data[: first.size]}
