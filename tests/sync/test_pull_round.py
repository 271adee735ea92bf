"""A pull round (sync/pull/round.py) on the fake filesystem: pages through every stage
with bounded units of work, deletions last and deepest first, and everything recorded."""

from __future__ import annotations

import os

from pull_support import FOLDER, local_file, make_puller, remote_file, source_for

from p2psync.fs import FakeFS, read_all
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType
from p2psync.sync.pull import ItemSkipped, PullRound, PullTunings


async def test_a_round_applies_pages_through_every_stage(index: IndexStore) -> None:
    fs = FakeFS()
    fs.mkdir("old")
    gone_file = local_file(fs, index, "old/f.txt", b"going")
    gone_dir = FileInfo(
        name="old", type=FileType.DIRECTORY, permissions=0o755, version=vector.make([(1, 1)])
    )
    index.update_local(FOLDER, [gone_dir])
    files = {f"d/s{i}.txt": os.urandom(100 + i) for i in range(5)}
    files["d/big.bin"] = os.urandom(300_000)
    source = source_for(files)
    big = remote_file("d/big.bin", files["d/big.bin"])
    source.blocks |= {b.hash: files[big.name][b.offset : b.offset + b.size] for b in big.blocks}
    puller = make_puller(
        fs,
        index,
        source,
        tunings=PullTunings(small_file_max=1000, small_files_per_batch=2, files_in_parallel=1),
    )
    directory = FileInfo(
        name="d", type=FileType.DIRECTORY, permissions=0o755, version=vector.make([(2, 1)])
    )
    deletions = [
        fi.with_(deleted=True, blocks=(), size=0, version=vector.make([*fi.version, (2, 1)]))
        for fi in (index.get_local(FOLDER, "old"), gone_file)
        if fi is not None
    ]
    pages = [
        [directory, *(remote_file(n, d) for n, d in sorted(files.items())[:3])],
        [*(remote_file(n, d) for n, d in sorted(files.items())[3:]), *deletions],
        [],
    ]
    finished: list[str] = []
    skipped: list[tuple[str, ItemSkipped]] = []
    flushes = 0

    async def flush() -> None:
        nonlocal flushes
        flushes += 1
        await puller.settings.in_thread(puller.flush_gated)

    pull_round = PullRound(
        folder_id=FOLDER,
        puller=puller,
        rename_sources={},
        flush=flush,
        on_finished=lambda fi: finished.append(fi.name),
        on_skipped=lambda fi, exc: skipped.append((fi.name, exc)),
    )

    async def next_page() -> list[FileInfo]:
        return pages.pop(0)

    await pull_round.run(next_page)
    assert skipped == [] and pull_round.errors == {}
    for name, data in files.items():
        assert read_all(fs, name) == data
        assert index.get_local(FOLDER, name) is not None
    assert [e.name for e in fs.scandir("")] == ["d"]
    assert finished[0] == "d" and finished[-2:] == ["old/f.txt", "old"]  # deepest first
    assert sorted(finished[1:-2]) == sorted(files)
    assert flushes >= 2  # units flush as they finish, and the round once at the end
    local_old = index.get_local(FOLDER, "old")
    assert local_old is not None and local_old.deleted
