"""Stage plan (sync/pull/plan.py): what a page of needed items becomes, in what order."""

from __future__ import annotations

from pull_support import remote_file

from p2psync.protocol.fileinfo import FileType
from p2psync.sync.pull import DEFAULT_TUNINGS, PullTunings
from p2psync.sync.pull.plan import deletes_in_order, pair_renames, plan_page, split_files


def test_a_page_splits_into_directories_files_and_deletions_in_order() -> None:
    d = remote_file("d", b"").with_(type=FileType.DIRECTORY, blocks=())
    sub = remote_file("d/sub", b"").with_(type=FileType.DIRECTORY, blocks=())
    f1, f2 = remote_file("d/a", b"a"), remote_file("d/sub/b", b"b")
    gone = remote_file("old", b"o").with_(deleted=True)
    link = remote_file("l", b"").with_(type=FileType.SYMLINK, symlink_target="d")
    plan = plan_page([d, f1, gone, sub, f2, link])
    assert plan.directories == [d, sub]
    assert plan.files == [f1, f2, link]
    assert plan.deletes == [gone]


def test_deletions_run_deepest_first() -> None:
    names = ["a", "a/b", "a/b/c", "a/d"]
    deletes = [remote_file(n, b"").with_(deleted=True) for n in names]
    assert [fi.name for fi in deletes_in_order(deletes)] == ["a/d", "a/b/c", "a/b", "a"]


def test_a_new_file_with_a_needed_deletions_content_pairs_with_it_once() -> None:
    moved = remote_file("new.txt", b"same content")
    copy = remote_file("copy.txt", b"same content")
    other = remote_file("other.txt", b"other")
    gone = remote_file("old.txt", b"same content").with_(deleted=True)
    sources = {moved.blocks_hash(): [gone]}
    pairs, rest = pair_renames([moved, copy, other], sources)
    assert pairs == [(moved, gone)]
    assert rest == [copy, other]  # the deletion was taken: the copy is pulled normally
    assert sources == {moved.blocks_hash(): []}


def test_files_become_batches_of_small_files_and_big_files_alone() -> None:
    small = [remote_file(f"s{i}", b"x" * 1000) for i in range(5)]
    big = remote_file("big", b"x" * (DEFAULT_TUNINGS.small_file_max + 1))
    units = split_files([small[0], big, *small[1:]], DEFAULT_TUNINGS)
    assert units.small_batches == [small]
    assert units.big == [big]
    tight = PullTunings(small_file_max=500, small_files_per_batch=2)
    units = split_files([*small, big], tight)
    assert units.small_batches == []
    assert units.big == [*small, big]
    units = split_files(small, PullTunings(small_files_per_batch=2))
    assert [len(b) for b in units.small_batches] == [2, 2, 1]
