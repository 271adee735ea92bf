"""Stage commit (sync/pull/commit.py) on the fake filesystem: space claims, the
never-clobber check, conflict copies and the rename."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
from pull_support import FOLDER, LOCAL_SHORT, local_file, make_puller, remote_file

from p2psync.fs import FakeFS, read_all, write_all
from p2psync.fs.internal import temp_name
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.sync.pull import DISK_FULL, ItemSkipped, PullTunings, WaitForSpace

MIB = 1024 * 1024


def test_space_is_claimed_next_to_the_reserve_and_waits_for_other_files(
    index: IndexStore,
) -> None:
    fs = FakeFS(free_bytes=10 * MIB)
    space = make_puller(fs, index, tunings=PullTunings(min_free_bytes=2 * MIB)).commit.space
    first = space.claim(5 * MIB)
    with pytest.raises(WaitForSpace):  # fits alone, not next to the first
        space.claim(5 * MIB)
    with pytest.raises(ItemSkipped) as full:  # never fits
        space.claim(9 * MIB)
    assert full.value.reason == DISK_FULL
    space.give_back(first)
    assert space.claim(8 * MIB) == 8 * MIB


async def test_a_released_claim_wakes_a_waiting_file(index: IndexStore) -> None:
    space = make_puller(FakeFS(), index, tunings=PullTunings(space_wait_poll=60)).commit.space
    claimed = space.claim(MIB)
    woke = trio.Event()

    async def waiter() -> None:
        await space.wait()
        woke.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert not woke.is_set()
            space.release(claimed)
    assert woke.is_set()


def test_a_file_changed_since_its_scan_is_never_clobbered(index: IndexStore) -> None:
    fs = FakeFS()
    cur = local_file(fs, index, "doc.txt", b"scanned")
    commit = make_puller(fs, index).commit
    assert commit.check_unchanged("doc.txt", cur) is not None
    write_all(fs, "doc.txt", b"the user's edit")
    write_all(fs, temp_name("doc.txt"), b"remote")
    new = remote_file("doc.txt", b"remote").with_(
        version=vector.make([*cur.version, *remote_file("x", b"").version])
    )
    with pytest.raises(ItemSkipped) as caught:
        commit.commit_file(new, cur, temp_name("doc.txt"), fs.lstat(temp_name("doc.txt")))
    assert caught.value.rescan
    assert read_all(fs, "doc.txt") == b"the user's edit"


def test_an_unscanned_file_in_the_way_is_not_clobbered(index: IndexStore) -> None:
    fs = FakeFS()
    write_all(fs, "new.txt", b"not scanned yet")
    with pytest.raises(ItemSkipped) as caught:
        make_puller(fs, index).commit.check_unchanged("new.txt", None)
    assert caught.value.rescan


def test_a_file_created_under_a_new_name_during_the_pull_is_not_clobbered(
    index: IndexStore,
) -> None:
    fs = FakeFS()
    commit = make_puller(fs, index).commit
    assert commit.check_unchanged("new.txt", None) is None  # nothing there at the check
    write_all(fs, temp_name("new.txt"), b"remote")
    write_all(fs, "new.txt", b"created by the user meanwhile")
    with pytest.raises(ItemSkipped) as caught:
        commit.commit_file(
            remote_file("new.txt", b"remote"),
            None,
            temp_name("new.txt"),
            fs.lstat(temp_name("new.txt")),
        )
    assert caught.value.rescan
    assert read_all(fs, "new.txt") == b"created by the user meanwhile"


def test_a_concurrent_change_keeps_the_local_file_as_a_conflict_copy(index: IndexStore) -> None:
    fs = FakeFS()
    cur = local_file(fs, index, "doc.txt", b"local edit")
    puller = make_puller(fs, index)
    puller.settings.clock = lambda: dt.datetime(2026, 1, 2, 3, 4, 5)
    theirs = remote_file("doc.txt", b"their edit")  # concurrent: neither vector has the other
    write_all(fs, temp_name("doc.txt"), b"their edit")
    puller.commit.commit_file(theirs, cur, temp_name("doc.txt"), fs.lstat(temp_name("doc.txt")))
    assert read_all(fs, "doc.txt") == b"their edit"
    [copy] = puller.created
    assert copy.startswith("doc.sync-conflict-20260102-030405-") and copy.endswith(".txt")
    assert read_all(fs, copy) == b"local edit"
    assert puller.conflicts_made == [("doc.txt", copy, theirs.modified_by)]
    assert puller.stats.conflicts == 1
    assert LOCAL_SHORT != theirs.modified_by


def test_a_newer_version_replaces_the_file_and_is_recorded_with_the_temp_files_stat(
    index: IndexStore,
) -> None:
    fs = FakeFS()
    cur = local_file(fs, index, "doc.txt", b"v1")
    puller = make_puller(fs, index)
    newer = remote_file("doc.txt", b"v2").with_(
        version=vector.make([*cur.version, *remote_file("x", b"").version])
    )
    write_all(fs, temp_name("doc.txt"), b"v2")
    st = fs.lstat(temp_name("doc.txt"))
    puller.commit.commit_file(newer, cur, temp_name("doc.txt"), st)
    assert read_all(fs, "doc.txt") == b"v2" and puller.created == []
    assert puller.flush() > 0
    recorded = index.get_local(FOLDER, "doc.txt")
    assert recorded is not None and recorded.inode == st.inode
