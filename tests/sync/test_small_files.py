"""Batches of small files (sync/pull/small_files.py) on a real folder and a real index: every
outcome a batch can have for one file, while the rest of the batch still lands."""

from __future__ import annotations

import os
from pathlib import Path

from pull_support import (
    FOLDER,
    LOCAL_SHORT,
    Source,
    make_puller,
    payloads,
    pull_small_files,
    remote_file,
    source_for,
    temp_files,
)

from p2psync.fs import BasicFS, FakeFS, write_all
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType, LocalFileInfo, block_size_for
from p2psync.scanner.blocks import hash_bytes
from p2psync.sync.pull import DEFAULT_TUNINGS, DISK_FULL
from p2psync.sync.pull.plan import batches, is_small_file

SMALL_FILE_MAX = DEFAULT_TUNINGS.small_file_max
BATCH_BYTES = DEFAULT_TUNINGS.batch_bytes


def is_small(fi: FileInfo) -> bool:
    return is_small_file(fi, DEFAULT_TUNINGS)


async def test_a_batch_lands_every_file_with_its_metadata_and_records_it(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(40)
    source = source_for(files)
    puller = make_puller(fs, index, source)
    result = await pull_small_files(puller, [remote_file(n, d) for n, d in files.items()])
    assert sorted(f.name for f in result.done) == sorted(files)
    assert result.skipped == [] and result.retry == []
    root = Path(fs.root)
    for name, data in files.items():
        assert (root / name).read_bytes() == data
        st = (root / name).stat()
        assert st.st_mtime_ns == 1_700_000_000_123_456_789 and st.st_mode & 0o777 == 0o640
    assert not temp_files(root)
    assert puller.stats.blocks_network == 40 and puller.stats.items_done == 40
    assert puller.take_flushed_sequence() > 0  # the batch recorded itself
    assert index.get_local(FOLDER, next(iter(files))) is not None


async def test_a_corrupt_block_sends_only_that_file_back_for_a_single_pull(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(5)
    source = source_for(files)
    bad = sorted(files)[2]
    source.corrupt.add(bad)
    result = await pull_small_files(
        make_puller(fs, index, source), [remote_file(n, d) for n, d in files.items()]
    )
    assert [f.name for f in result.retry] == [bad]
    assert len(result.done) == 4
    assert not (Path(fs.root) / bad).exists()  # nothing unverified ever lands


async def test_a_refused_request_skips_that_file_with_the_reason(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(4)
    source = source_for(files)
    refused = sorted(files)[0]
    source.refuse.add(refused)
    result = await pull_small_files(
        make_puller(fs, index, source), [remote_file(n, d) for n, d in files.items()]
    )
    [(fi, skipped)] = result.skipped
    assert fi.name == refused and "could not fetch all blocks" in skipped.reason
    assert len(result.done) == 3
    assert not temp_files(Path(fs.root))


async def test_a_file_changed_since_the_scan_is_left_alone(fs: BasicFS, index: IndexStore) -> None:
    write_all(fs, "mine.txt", b"the user's unscanned edit")
    files = {"mine.txt": b"remote content", "other.txt": b"other remote content"}
    result = await pull_small_files(
        make_puller(fs, index, source_for(files)), [remote_file(n, d) for n, d in files.items()]
    )
    [(fi, skipped)] = result.skipped
    assert fi.name == "mine.txt" and skipped.rescan
    assert (Path(fs.root) / "mine.txt").read_bytes() == b"the user's unscanned edit"
    assert (Path(fs.root) / "other.txt").read_bytes() == b"other remote content"


async def test_content_already_on_this_device_is_copied_not_fetched(
    fs: BasicFS, index: IndexStore
) -> None:
    data = b"shared content " * 50
    fs.mkdir("old")
    write_all(fs, "old/original.txt", data)
    st = fs.lstat("old/original.txt")
    index.update_local(
        FOLDER,
        [
            remote_file("old/original.txt", data)
            .with_(
                modified_ns=st.mtime_ns,
                permissions=st.permissions,
                version=vector.make([(LOCAL_SHORT, 1)]),
                modified_by=LOCAL_SHORT,
            )
            .as_local(inode=st.inode)
        ],
    )
    source = source_for({"x": data})
    puller = make_puller(fs, index, source)
    result = await pull_small_files(puller, [remote_file("new/copy.txt", data)])
    assert [f.name for f in result.done] == ["new/copy.txt"]
    assert source.requests == []
    assert puller.stats.blocks_local == 1
    assert (Path(fs.root) / "new" / "copy.txt").read_bytes() == data


async def test_a_directory_in_the_way_goes_back_for_a_single_pull(
    fs: BasicFS, index: IndexStore
) -> None:
    fs.mkdir("taken")
    st = fs.lstat("taken")
    index.update_local(
        FOLDER,
        [
            LocalFileInfo(
                name="taken",
                type=st.type,
                permissions=st.permissions,
                modified_ns=st.mtime_ns,
                modified_by=LOCAL_SHORT,
                version=vector.make([(LOCAL_SHORT, 1)]),
                inode=st.inode,
            )
        ],
    )
    files = {"taken": b"now a file"}
    result = await pull_small_files(
        make_puller(fs, index, source_for(files)), [remote_file("taken", b"now a file")]
    )
    assert [f.name for f in result.retry] == ["taken"]
    assert (Path(fs.root) / "taken").is_dir()


async def test_a_full_disk_skips_the_batch_and_writes_nothing(index: IndexStore) -> None:
    fake = FakeFS()
    fake.free_bytes = 1024
    files = payloads(3)
    result = await pull_small_files(
        make_puller(fake, index, source_for(files)), [remote_file(n, d) for n, d in files.items()]
    )
    assert {s.reason for _, s in result.skipped} == {DISK_FULL}
    assert fake.scandir("") == []


async def test_hostile_names_are_refused_per_file(fs: BasicFS, index: IndexStore) -> None:
    good = {"fine.txt": b"fine"}
    hostile = [
        remote_file(".p2psync.evil.tmp", b"internal"),
        remote_file("../escape.txt", b"x"),
        remote_file("nul\x00name", b"y"),  # the index cannot even hold this name
    ]
    result = await pull_small_files(
        make_puller(fs, index, source_for(good)), [*hostile, remote_file("fine.txt", b"fine")]
    )
    assert [f.name for f in result.done] == ["fine.txt"]
    assert sorted(f.name for f, _ in result.skipped) == sorted(f.name for f in hostile)
    assert not (Path(fs.root).parent / "escape.txt").exists()


def test_files_up_to_one_mib_count_as_small() -> None:
    assert is_small(remote_file("a", b"x" * 1000))
    assert is_small(remote_file("m", b"x" * SMALL_FILE_MAX))
    assert not is_small(remote_file("b", b"x" * (SMALL_FILE_MAX + 1)))
    assert not is_small(remote_file("d", b"x").with_(deleted=True))
    assert not is_small(remote_file("e", b"").with_(type=FileType.DIRECTORY))


def test_batches_respect_the_file_count_and_the_byte_bound() -> None:
    files = [remote_file(f"f{i}", b"").with_(size=3 * 1024 * 1024) for i in range(5)]
    files += [remote_file(f"s{i}", b"x") for i in range(10)]
    cut = list(batches(files, 4, BATCH_BYTES))
    assert [len(b) for b in cut] == [2, 2, 4, 4, 3]
    assert all(sum(f.size for f in b) <= BATCH_BYTES for b in cut)
    assert [f.name for b in cut for f in b] == [f.name for f in files]


async def test_a_batch_of_multi_block_files(fs: BasicFS, index: IndexStore) -> None:
    files = {f"m{i}.bin": os.urandom(300_000 + i) for i in range(3)}
    blocks = {}
    for data in files.values():
        for b in hash_bytes(data, block_size_for(len(data))):
            blocks[b.hash] = data[b.offset : b.offset + b.size]
    source = Source(blocks)
    puller = make_puller(fs, index, source)
    result = await pull_small_files(puller, [remote_file(n, d) for n, d in files.items()])
    assert len(result.done) == 3
    assert all((Path(fs.root) / n).read_bytes() == d for n, d in files.items())
    assert puller.stats.blocks_network == sum(
        len(hash_bytes(d, block_size_for(len(d)))) for d in files.values()
    )


async def test_a_peer_that_cannot_serve_a_block_is_passed_over_for_one_that_can(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(6)
    refusing, serving = source_for(files), source_for(files)
    refusing.refuse.update(files)
    result = await pull_small_files(
        make_puller(fs, index, refusing, serving), [remote_file(n, d) for n, d in files.items()]
    )
    assert sorted(f.name for f in result.done) == sorted(files)
    assert result.skipped == [] and result.retry == []
    assert refusing.requests  # it was asked first for some blocks


class FlushFailsFor(BasicFS):
    """A folder whose disk reports a write error for one file when the batch is flushed
    (what a failing sector does; not something a test can make a real disk do)."""

    def __init__(self, root: str, failing: str) -> None:
        super().__init__(root)
        self.failing = failing

    def fsync_files(self, handles):  # type: ignore[no-untyped-def]
        errors = super().fsync_files(handles)
        return [
            OSError(5, "Input/output error") if self.failing in h.name else e
            for h, e in zip(handles, errors, strict=True)
        ]


async def test_a_file_that_cannot_be_flushed_is_skipped_and_never_renamed_in(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(6)
    bad = sorted(files)[2]
    failing = FlushFailsFor(fs.root, failing=bad.rpartition("/")[2])
    puller = make_puller(failing, index, source_for(files))
    result = await pull_small_files(puller, [remote_file(n, d) for n, d in files.items()])
    assert sorted(f.name for f in result.done) == sorted(n for n in files if n != bad)
    assert [(fi.name, "Input/output error" in str(s)) for fi, s in result.skipped] == [(bad, True)]
    root = Path(fs.root)
    assert not (root / bad).exists()  # never renamed into place
    assert index.get_local(FOLDER, bad) is None
    for name in files.keys() - {bad}:
        assert (root / name).read_bytes() == files[name]


async def test_a_longer_temp_file_left_behind_is_cut_to_the_file_size(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(3)
    stale = sorted(files)[1]
    root = Path(fs.root)
    (root / stale).parent.mkdir(parents=True, exist_ok=True)
    (root / stale).with_name(f".p2psync.{Path(stale).name}.tmp").write_bytes(b"x" * 20_000)
    result = await pull_small_files(
        make_puller(fs, index, source_for(files)), [remote_file(n, d) for n, d in files.items()]
    )
    assert sorted(f.name for f in result.done) == sorted(files)
    for name, data in files.items():
        assert (root / name).read_bytes() == data  # the stale tail is gone, not kept
    assert not temp_files(root)


async def test_files_get_their_permissions_whatever_the_umask(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(3)
    old = os.umask(0o077)  # would clear the group bit of 0o640 at creation
    try:
        result = await pull_small_files(
            make_puller(fs, index, source_for(files)),
            [remote_file(n, d) for n, d in files.items()],
        )
    finally:
        os.umask(old)
    assert len(result.done) == 3
    for name in files:
        assert (Path(fs.root) / name).stat().st_mode & 0o777 == 0o640
        assert index.get_local(FOLDER, name).permissions == 0o640  # type: ignore[union-attr]
