"""Batches are written with multi-row statements (writes._insert_rows): the outcome must be
exactly what writing the same entries one at a time gives — entries, global versions,
need, counts and the block map — across statement boundaries, for names new to the
device and names it already has, and for a name given twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from index_helpers import DEV_A, DEV_B, LOCAL, assert_counts_exact, make_deleted, make_file

from p2psync.index import IndexStore
from p2psync.index.writes import _ROWS_PER_STATEMENT
from p2psync.protocol.fileinfo import FileInfo

COUNT = 2 * _ROWS_PER_STATEMENT + 57  # three statements, the last one short


def state(store: IndexStore, folder: str) -> dict[str, object]:
    """Everything a batch write decides, in comparable form."""
    entries = {
        device: sorted(
            (fi.name, fi.version, fi.size, fi.sequence, fi.blocks, fi.deleted)
            for fi in store.iter_device(folder, device)
        )
        for device in (LOCAL, DEV_A, DEV_B)
    }
    return {
        "entries": entries,
        "globals": sorted((fi.name, fi.version, fi.deleted) for fi in store.iter_global(folder)),
        "need": sorted(fi.name for fi in store.iter_need(folder)),
        "counts": (
            store.counts(folder, LOCAL),
            store.global_counts(folder),
            store.need_counts(folder),
        ),
        "blocks": sorted(
            (loc.name, loc.offset)
            for fi in store.iter_device(folder, LOCAL)
            for b in fi.blocks
            for loc in store.find_block(b.hash)
        ),
    }


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[IndexStore, IndexStore]]:
    batched = IndexStore.open(tmp_path / "batched.db", LOCAL)
    single = IndexStore.open(tmp_path / "single.db", LOCAL)
    try:
        yield batched, single
    finally:
        batched.close()
        single.close()


def history(pair: tuple[IndexStore, IndexStore]) -> list[FileInfo]:
    """Both stores get the same past: a peer's index and some local files. Returns the
    peer's entries, from which the batch under test is made."""
    names = [f"d{i % 7}/f{i:04d}" for i in range(COUNT)]
    remote = [make_file(n, ((0xA, 1),), content=f"{n}-a") for n in names]
    local_before = [make_file(n, ((0xB, 1),), content=f"{n}-b") for n in names[::3]]
    for store in pair:
        store.update_remote("f", DEV_A, remote)
        store.update_local("f", local_before)
    return remote


def test_a_remote_batch_equals_one_entry_at_a_time(pair: tuple[IndexStore, IndexStore]) -> None:
    batched, single = pair
    remote = history(pair)
    # DEV_B: names it never had and a name given twice in one update (the later one counts).
    update = [
        fi.with_(version=((0xA, 1), (0xC, 2)), sequence=i + 1) for i, fi in enumerate(remote[::2])
    ]
    update.append(make_deleted(remote[0].name, ((0xA, 1), (0xC, 3)), sequence=len(update) + 1))
    batched.update_remote("f", DEV_B, update)
    for fi in update:
        single.update_remote("f", DEV_B, [fi])
    assert state(batched, "f") == state(single, "f")
    assert batched.get("f", DEV_B, remote[0].name).deleted
    for store in pair:
        assert_counts_exact(store._writer._conn)


def test_a_local_batch_equals_one_entry_at_a_time(pair: tuple[IndexStore, IndexStore]) -> None:
    batched, single = pair
    remote = history(pair)
    # What the puller records: the peer's versions, for names this device has (new
    # content: its old blocks go) and names it never had.
    pulled = [fi.as_local(inode=i + 1) for i, fi in enumerate(remote)]
    batched.note_applying("f", pulled)
    single.note_applying("f", pulled)
    batched.update_local("f", pulled, applied=True)
    for fi in pulled:
        single.update_local("f", [fi], applied=True)
    got, want = state(batched, "f"), state(single, "f")
    assert got == want
    assert got["need"] == []
    assert batched.applying("f") == []
    for store in pair:
        assert_counts_exact(store._writer._conn)


def test_a_local_batch_naming_a_file_twice_keeps_the_later(store: IndexStore) -> None:
    first = make_file("x", ((0xB, 1),), content="one")
    second = make_file("x", ((0xB, 2),), content="two")
    others = [make_file(f"o{i:04d}", ((0xB, 1),)) for i in range(COUNT)]
    store.update_local("f", [first, *others, second])
    kept = store.get_local("f", "x")
    assert kept is not None and kept.blocks == second.blocks
    assert [loc.name for loc in store.find_block(first.blocks[0].hash)] == []
    assert [loc.name for loc in store.find_block(second.blocks[0].hash)] == ["x"]
    assert_counts_exact(store._writer._conn)
