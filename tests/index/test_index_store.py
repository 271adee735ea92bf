"""IndexStore basics: round trips, sequences, streams, block map, index IDs, counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from index_helpers import DEV_A, DEV_B, LOCAL, block_hash, make_deleted, make_dir, make_file

from p2psync.errors import UsageError
from p2psync.index import BlockLocation, Counts, IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType, LocalFileInfo


def full_file() -> LocalFileInfo:
    return LocalFileInfo(
        name="docs/rapport été.odt",
        type=FileType.FILE,
        size=300_000,
        permissions=0o640,
        modified_ns=1_712_345_678_123_456_789,
        modified_by=(1 << 64) - 2,
        no_permissions=True,
        version=vector.make([((1 << 64) - 2, 1_712_345_678), (3, 4)]),
        block_size=128 * 1024,
        blocks=(
            BlockInfo(0, 131072, block_hash("0")),
            BlockInfo(131072, 131072, block_hash("1")),
            BlockInfo(262144, 37856, block_hash("2")),
        ),
        inode=(1 << 64) - 1,
        local_flags=3,
    )


def test_local_round_trip_sets_sequence(store: IndexStore) -> None:
    fi = full_file()
    [stored] = store.update_local("f", [fi])
    assert stored == fi.with_(sequence=1)
    assert store.get_local("f", fi.name) == stored
    # as peers and the global view see it: without the local bookkeeping
    assert store.get("f", LOCAL, fi.name) == stored.as_file_info()
    assert store.get_global("f", fi.name) == stored.as_file_info()
    assert store.get_local("f", "missing") is None
    assert store.get_local("other", fi.name) is None


def test_remote_round_trip_keeps_sequence(store: IndexStore) -> None:
    fi = full_file().as_file_info().with_(sequence=77, invalid=True, symlink_target="")
    link = FileInfo(
        name="l",
        type=FileType.SYMLINK,
        symlink_target="a/b",
        sequence=78,
        version=vector.make([(9, 2)]),
    )
    store.update_remote("f", DEV_A, [fi, link])
    assert store.get("f", DEV_A, fi.name) == fi
    assert store.get("f", DEV_A, "l") == link
    assert store.get_local("f", fi.name) is None
    assert store.max_sequence("f", DEV_A) == 78


def test_remote_data_for_the_local_device_is_refused(store: IndexStore) -> None:
    with pytest.raises(UsageError):
        store.update_remote("f", LOCAL, [make_file("a")])
    with pytest.raises(UsageError):
        store.replace_remote("f", LOCAL, [make_file("a")])
    assert store.get_local("f", "a") is None


def test_sequences_are_monotonic_per_folder(store: IndexStore) -> None:
    first = store.update_local("f", [make_file(f"a{i}") for i in range(3)])
    assert [fi.sequence for fi in first] == [1, 2, 3]
    other = store.update_local("g", [make_file("x")])
    assert other[0].sequence == 1
    again = store.update_local("f", [make_file("a1", ((1, 2),)), make_file("b")])
    assert [fi.sequence for fi in again] == [4, 5]
    assert store.max_sequence("f", LOCAL) == 5
    assert store.max_sequence("g", LOCAL) == 1
    assert store.get_local("f", "a1").sequence == 4
    # A changed entry moves to its new sequence; the old one no longer appears.
    batches = list(store.iter_local_since("f", 0))
    assert [fi.sequence for batch in batches for fi in batch] == [1, 3, 4, 5]


def test_sequences_survive_reopen(tmp_path: Path) -> None:
    with IndexStore.open(tmp_path / "i.db", LOCAL) as s:
        s.update_local("f", [make_file("a"), make_file("b")])
    with IndexStore.open(tmp_path / "i.db", LOCAL) as s:
        assert s.update_local("f", [make_file("c")])[0].sequence == 3


def test_iter_local_since_orders_and_batches(store: IndexStore) -> None:
    for start in range(0, 50, 10):
        store.update_local("f", [make_file(f"n{i:02d}") for i in range(start, start + 10)])
    batches = list(store.iter_local_since("f", 17, batch_size=7))
    assert [len(b) for b in batches] == [7, 7, 7, 7, 5]
    seqs = [fi.sequence for b in batches for fi in b]
    assert seqs == list(range(18, 51))
    assert [fi.name for b in batches for fi in b][:2] == ["n17", "n18"]
    assert list(store.iter_local_since("f", 50)) == []
    assert [len(b) for b in store.iter_local_since("f", 40, batch_size=10)] == [10]
    assert list(store.iter_local_since("nope", 0)) == []


def test_iter_local_code_point_order_and_prefix(store: IndexStore) -> None:
    names = ["a", "a/b", "a/b/c", "a/b.txt", "a-b", "a b", "a.txt", "ab", "b", "a/b/c/d"]
    store.update_local("f", [make_file(n) for n in reversed(names)])
    assert [fi.name for fi in store.iter_local("f")] == sorted(names)
    assert [fi.name for fi in store.iter_local("f", "a")] == [
        "a",
        "a/b",
        "a/b.txt",
        "a/b/c",
        "a/b/c/d",
    ]
    assert [fi.name for fi in store.iter_local("f", "a/b")] == ["a/b", "a/b/c", "a/b/c/d"]
    assert [fi.name for fi in store.iter_local("f", "a/b/c/d")] == ["a/b/c/d"]
    assert list(store.iter_local("f", "zzz")) == []


def test_iter_local_streams_more_than_a_page(store: IndexStore) -> None:
    store.update_local("f", [make_file(f"d/{i:04d}") for i in range(1234)])
    got = [fi.name for fi in store.iter_local("f", "d")]
    assert got == [f"d/{i:04d}" for i in range(1234)]


def test_iter_global_and_device(store: IndexStore) -> None:
    store.update_local("f", [make_file("a"), make_file("c")])
    store.update_remote("f", DEV_A, [make_file("b", ((2, 1),)), make_file("c", ((1, 1), (2, 1)))])
    assert [(fi.name, fi.version) for fi in store.iter_global("f")] == [
        ("a", ((1, 1),)),
        ("b", ((2, 1),)),
        ("c", ((1, 1), (2, 1))),
    ]
    assert [fi.name for fi in store.iter_global("f", "b")] == ["b"]
    assert [fi.name for fi in store.iter_device("f", DEV_A)] == ["b", "c"]


def test_block_map_follows_local_updates(store: IndexStore) -> None:
    store.update_local("f", [make_file("one", content="X", size=200_000)])
    h0, h1 = block_hash("X@0"), block_hash("X@131072")
    assert list(store.find_block(h0)) == [BlockLocation("f", "one", 0, 131072)]
    assert list(store.find_block(h1)) == [BlockLocation("f", "one", 131072, 68928)]
    # The same content elsewhere, in another folder too.
    store.update_local("g", [make_file("copy", content="X", size=200_000)])
    assert sorted(store.find_block(h0)) == [
        BlockLocation("f", "one", 0, 131072),
        BlockLocation("g", "copy", 0, 131072),
    ]
    # New content replaces the old blocks.
    store.update_local("f", [make_file("one", ((1, 2),), content="Y", size=100)])
    assert list(store.find_block(h0)) == [BlockLocation("g", "copy", 0, 131072)]
    assert list(store.find_block(block_hash("Y@0"))) == [BlockLocation("f", "one", 0, 100)]
    # Deleted and invalid entries hold no usable blocks; remote entries are not local.
    store.update_local("g", [make_deleted("copy", ((1, 3),))])
    store.update_local("f", [make_file("one", ((1, 3),), content="Y", size=100, invalid=True)])
    store.update_remote("f", DEV_A, [make_file("remote", ((2, 1),), content="X", size=10)])
    assert list(store.find_block(h0)) == []
    assert list(store.find_block(block_hash("Y@0"))) == []
    # Dropping a folder drops its blocks.
    store.update_local("g", [make_file("again", content="Z")])
    store.drop_folder("g")
    assert list(store.find_block(block_hash("Z@0"))) == []


def test_find_block_streams_many_locations(store: IndexStore) -> None:
    store.update_local("f", [make_file(f"c{i:04d}", content="same") for i in range(1100)])
    locations = list(store.find_block(block_hash("same@0")))
    assert len(locations) == 1100
    assert len(set(locations)) == 1100


def test_index_ids(tmp_path: Path) -> None:
    with IndexStore.open(tmp_path / "i.db", LOCAL) as s:
        assert s.index_id("f", LOCAL) == 0
        local_id = s.local_index_id("f")
        assert 0 < local_id < 1 << 64
        assert s.local_index_id("f") == local_id
        assert s.index_id("f", LOCAL) == local_id
        assert s.local_index_id("g") != local_id
        s.set_index_id("f", DEV_A, (1 << 64) - 5)
        assert s.index_id("f", DEV_A) == (1 << 64) - 5
        assert s.index_id("g", DEV_A) == 0
    with IndexStore.open(tmp_path / "i.db", LOCAL) as s:
        assert s.local_index_id("f") == local_id
        assert s.index_id("f", DEV_A) == (1 << 64) - 5
        # A remote index kept across clear_remote (the caller sets the new one) ...
        s.update_remote("f", DEV_A, [make_file("a", sequence=9)])
        s.clear_remote("f", DEV_A)
        assert s.index_id("f", DEV_A) == (1 << 64) - 5
        assert s.max_sequence("f", DEV_A) == 0
        # ... but not across drop_device; and a dropped folder gets a new local ID.
        s.drop_device("f", DEV_A)
        assert s.index_id("f", DEV_A) == 0
        s.drop_folder("f")
        assert s.index_id("f", LOCAL) == 0
        assert s.local_index_id("f") not in (0, local_id)


def test_replace_remote_drops_previous_entries(store: IndexStore) -> None:
    store.update_remote(
        "f",
        DEV_A,
        [make_file("old", ((2, 1),), sequence=1), make_file("kept", ((2, 1),), sequence=2)],
    )
    store.replace_remote("f", DEV_A, [make_file("kept", ((2, 2),), sequence=1)])
    store.update_remote("f", DEV_A, [make_file("new", ((2, 3),), sequence=2)])
    assert [fi.name for fi in store.iter_device("f", DEV_A)] == ["kept", "new"]
    assert store.get_global("f", "old") is None
    assert store.get_global("f", "kept").version == ((2, 2),)
    assert store.max_sequence("f", DEV_A) == 2
    assert store.counts("f", DEV_A) == Counts(files=2, bytes=20)


def test_counts_follow_changes(store: IndexStore) -> None:
    store.update_local(
        "f",
        [
            make_dir("d"),
            make_file("d/a", size=100),
            make_file("b", size=5),
            FileInfo(name="l", type=FileType.SYMLINK, size=3, version=((1, 1),)),
            make_deleted("gone", ((1, 1),)),
        ],
    )
    assert store.counts("f") == Counts(files=2, directories=1, symlinks=1, deleted=1, bytes=108)
    store.update_local("f", [make_deleted("d/a", ((1, 2),)), make_file("b", ((1, 2),), size=7)])
    assert store.counts("f") == Counts(files=1, directories=1, symlinks=1, deleted=2, bytes=10)
    assert store.counts("f") == store.counts("f", LOCAL)
    assert store.counts("f", DEV_B) == Counts()
    assert store.counts("nope") == Counts()
    store.update_remote("f", DEV_A, [make_file("r", ((2, 1),), size=1000)])
    assert store.counts("f", DEV_A) == Counts(files=1, bytes=1000)
    assert store.global_counts("f") == Counts(
        files=2, directories=1, symlinks=1, deleted=2, bytes=1010
    )
    assert store.need_counts("f") == Counts(files=1, bytes=1000)


def brute_counts(files: list[FileInfo]) -> Counts:
    live = [f for f in files if not f.deleted]
    return Counts(
        files=sum(f.type == FileType.FILE for f in live),
        directories=sum(f.type == FileType.DIRECTORY for f in live),
        symlinks=sum(f.type == FileType.SYMLINK for f in live),
        deleted=len(files) - len(live),
        bytes=sum(f.size for f in live),
    )


def test_counts_equal_a_recount(store: IndexStore) -> None:
    store.update_local("f", [make_file(f"x{i}", size=i) for i in range(30)])
    store.update_remote(
        "f", DEV_A, [make_file(f"x{i}", ((1, 1), (2, 1)), size=2 * i) for i in range(0, 30, 3)]
    )
    store.update_remote(
        "f", DEV_B, [make_deleted(f"x{i}", ((1, 1), (3, 1))) for i in range(1, 30, 3)]
    )
    store.update_local("f", [make_file(f"x{i}", ((1, 2),), size=1) for i in range(2, 30, 6)])
    store.clear_remote("f", DEV_B)
    for dev in (LOCAL, DEV_A, DEV_B):
        assert store.counts("f", dev) == brute_counts(list(store.iter_device("f", dev)))
    globals_ = [g for g in store.iter_global("f") if not g.invalid]
    assert store.global_counts("f") == brute_counts(globals_)
    assert store.need_counts("f") == brute_counts(list(store.iter_need("f")))


def test_folders_devices_and_drops(store: IndexStore) -> None:
    assert store.folders() == []
    store.update_local("f", [make_file("a")])
    store.update_remote("f", DEV_A, [make_file("a", ((2, 1),))])
    store.update_remote("g", DEV_B, [make_file("b", ((3, 1),))])
    assert store.folders() == ["f", "g"]
    assert store.devices("f") == sorted([LOCAL, DEV_A])
    assert store.devices("g") == [DEV_B]
    store.drop_device("f", DEV_A)
    assert store.devices("f") == [LOCAL]
    assert store.get("f", DEV_A, "a") is None
    assert store.counts("f", DEV_A) == Counts()
    store.drop_folder("g")
    assert store.folders() == ["f"]
    assert store.devices("g") == []
    assert store.get("g", DEV_B, "b") is None
    assert store.global_counts("g") == Counts()
    # Re-adding a dropped folder starts from scratch.
    store.update_remote("g", DEV_B, [make_file("c", ((3, 1),))])
    assert [fi.name for fi in store.iter_global("g")] == ["c"]
    assert store.global_counts("g") == Counts(files=1, bytes=10)


def test_local_entries_and_indexed_blocks_of_a_batch_in_few_queries(store: IndexStore) -> None:
    mine = [make_file(f"d/f{i:04d}", content=f"c{i}") for i in range(0, 1200, 2)]
    store.update_local("f", mine)
    store.update_remote("f", DEV_A, [make_file("theirs", content="t")])
    asked = [f"d/f{i:04d}" for i in range(1200)] + ["theirs", "nowhere"]
    found = store.get_local_many("f", asked)
    assert sorted(found) == sorted(fi.name for fi in mine)  # more than one query's worth
    assert found["d/f0042"] == store.get_local("f", "d/f0042")
    assert store.get_local_many("other folder", asked) == {}
    hashes = [fi.blocks[0].hash for fi in mine[:700]] + [b"\x01" * 32, b"\x02" * 32]
    theirs = make_file("theirs", content="t").blocks[0].hash  # only a peer has it
    assert store.blocks_present([*hashes, theirs]) == {fi.blocks[0].hash for fi in mine[:700]}
    assert store.blocks_present([]) == set()


def test_need_counts_of_a_remote_device(store: IndexStore) -> None:
    """What a peer still needs of the global state (its completion): entries it lacks or
    holds at an older version; deletions only where it still has the item."""
    store.update_local(
        "f",
        [
            make_file("a", size=100),
            make_file("b", size=50),
            make_dir("d"),
            make_deleted("gone", ((1, 2),)),
            make_deleted("old", ((1, 2),)),
        ],
    )
    assert store.need_counts_of("f", DEV_A) == Counts(files=2, directories=1, bytes=150)
    store.update_remote(
        "f",
        DEV_A,
        [
            make_file("a", size=100),
            make_file("b", ((1, 0),), size=5),
            make_file("old", ((1, 1),), size=7),
        ],
    )
    # a is current; b is older; d is missing; old must still be deleted there
    assert store.need_counts_of("f", DEV_A) == Counts(files=1, directories=1, deleted=1, bytes=50)
    assert store.need_counts_of("f", DEV_B) == Counts(files=2, directories=1, bytes=150)
    assert store.need_counts_of("nope", DEV_A) == Counts()


def test_reset_local_forgets_local_entries_under_a_new_index_id(store: IndexStore) -> None:
    store.update_local("f", [make_file("both"), make_file("mine-only")])
    store.update_remote(
        "f", DEV_A, [make_file("both", sequence=1), make_file("theirs", sequence=2)]
    )
    store.set_index_id("f", DEV_A, 77)
    old_id, old_seq = store.local_index_id("f"), store.max_sequence("f", LOCAL)
    new_id = store.reset_local("f")
    assert new_id not in (0, old_id) and store.local_index_id("f") == new_id
    assert list(store.iter_local("f")) == []
    assert store.get_global("f", "mine-only") is None  # gone, not a deletion
    # what peers have is needed again, and nothing is to be deleted
    assert sorted(fi.name for fi in store.iter_need("f")) == ["both", "theirs"]
    assert store.need_counts("f").deleted == 0
    # sequence numbers go on, so a peer never sees one reused
    store.update_local("f", [make_file("new")])
    assert store.max_sequence("f", LOCAL) == old_seq + 1
    assert store.index_id("f", DEV_A) == 77  # peers' entries and IDs are kept
    assert store.max_sequence("f", DEV_A) == 2
