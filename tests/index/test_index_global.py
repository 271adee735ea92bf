"""Global versions and the local need across three devices (local, A, B)."""

from __future__ import annotations

import random

import pytest
from index_helpers import (
    DEV_A,
    DEV_B,
    LOCAL,
    assert_counts_exact,
    make_deleted,
    make_dir,
    make_file,
)

from p2psync.index import Counts, IndexStore, codec
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType
from p2psync.protocol.vector import Ordering, compare
from p2psync.rules import pick_global, wins_over

SHORT = {LOCAL: 1, DEV_A: 2, DEV_B: 3}


def needed(store: IndexStore, folder: str = "f") -> list[str]:
    return [fi.name for fi in store.iter_need(folder)]


def test_greater_version_wins_and_is_needed(store: IndexStore) -> None:
    store.update_remote("f", DEV_A, [make_file("x", ((2, 2),), content="new")])
    store.update_remote("f", DEV_B, [make_file("x", ((2, 1),), content="old")])
    g = store.get_global("f", "x")
    assert g is not None and g.version == ((2, 2),)
    assert store.devices_with_global("f", "x") == [DEV_A]
    assert needed(store) == ["x"]
    # B catches up: both hold the global now.
    store.update_remote("f", DEV_B, [make_file("x", ((2, 2),), content="new")])
    assert store.devices_with_global("f", "x") == sorted([DEV_A, DEV_B])


def test_concurrent_versions_follow_the_ordering_rule(store: IndexStore) -> None:
    a = make_file("x", ((2, 1),), content="a", modified_ns=200)
    b = make_file("x", ((3, 1),), content="b", modified_ns=100)
    store.update_remote("f", DEV_B, [b])
    store.update_remote("f", DEV_A, [a])
    assert store.get_global("f", "x").version == a.version
    assert pick_global([b, a]) == a
    # Equal times: the first differing counter (lowest short ID) decides.
    c = make_file("y", ((2, 5),), modified_ns=7)
    d = make_file("y", ((3, 9),), modified_ns=7)
    store.update_remote("f", DEV_A, [c])
    store.update_remote("f", DEV_B, [d])
    assert store.get_global("f", "y").version == pick_global([d, c]).version == c.version
    # A modification beats a concurrent delete even if the delete is newer.
    store.update_remote("f", DEV_A, [make_deleted("z", ((2, 1),), modified_ns=999)])
    store.update_remote("f", DEV_B, [make_file("z", ((3, 1),), modified_ns=1)])
    assert not store.get_global("f", "z").deleted
    assert store.devices_with_global("f", "z") == [DEV_B]


def test_local_winner_is_not_needed_and_not_a_source(store: IndexStore) -> None:
    store.update_local("f", [make_file("x", ((1, 3),), modified_ns=500)])
    store.update_remote("f", DEV_A, [make_file("x", ((2, 1),), modified_ns=100)])
    assert store.get_global("f", "x").version == ((1, 3),)
    assert needed(store) == []
    assert store.devices_with_global("f", "x") == []


def test_concurrent_local_loser_needs_the_global(store: IndexStore) -> None:
    store.update_local("f", [make_file("x", ((1, 3),), modified_ns=100)])
    store.update_remote("f", DEV_A, [make_file("x", ((2, 1),), modified_ns=500)])
    assert needed(store) == ["x"]
    assert store.need_counts("f") == Counts(files=1, bytes=10)


def test_deleted_global_not_needed_when_absent_locally(store: IndexStore) -> None:
    store.update_remote("f", DEV_A, [make_deleted("x", ((2, 2),))])
    assert store.get_global("f", "x").deleted
    assert needed(store) == []
    assert store.global_counts("f") == Counts(deleted=1)
    # ... but needed when the local device still has the file.
    store.update_local("f", [make_file("y", ((2, 1),))])
    store.update_remote("f", DEV_A, [make_deleted("y", ((2, 2),))])
    assert needed(store) == ["y"]
    assert store.need_counts("f") == Counts(deleted=1)


def test_invalid_is_never_global_when_a_valid_exists(store: IndexStore) -> None:
    store.update_remote("f", DEV_A, [make_file("x", ((2, 5),), invalid=True)])
    store.update_remote("f", DEV_B, [make_file("x", ((3, 1),))])
    g = store.get_global("f", "x")
    assert not g.invalid and g.version == ((3, 1),)
    assert store.devices_with_global("f", "x") == [DEV_B]
    assert needed(store) == ["x"]
    # Only invalid entries: the global is invalid, never needed, not counted.
    store.update_remote("f", DEV_A, [make_file("only", ((2, 1),), invalid=True)])
    assert store.get_global("f", "only").invalid
    assert store.devices_with_global("f", "only") == []
    assert needed(store) == ["x"]
    assert store.global_counts("f") == Counts(files=1, bytes=10)


def test_equal_versions_are_not_needed(store: IndexStore) -> None:
    store.update_remote("f", DEV_A, [make_file("x", ((2, 1),))])
    store.update_local("f", [make_file("x", ((2, 1),), invalid=True)])  # e.g. ignored here
    assert needed(store) == []
    assert store.devices_with_global("f", "x") == [DEV_A]


def test_need_disappears_after_recording_the_global(store: IndexStore) -> None:
    remote = make_file("x", ((1, 1), (2, 4)), content="v2")
    store.update_local("f", [make_file("x", ((1, 1),), content="v1")])
    store.update_remote("f", DEV_A, [remote])
    store.update_remote("f", DEV_B, [remote])
    assert needed(store) == ["x"]
    assert store.devices_with_global("f", "x") == sorted([DEV_A, DEV_B])
    # The puller fetched it and records the same version locally.
    [stored] = store.update_local("f", [remote])
    assert needed(store) == []
    assert store.need_counts("f") == Counts()
    assert store.get_global("f", "x") == stored  # equal versions: the local one is preferred
    assert store.devices_with_global("f", "x") == sorted([DEV_A, DEV_B])


def test_need_order_dirs_then_files_then_deletes(store: IndexStore) -> None:
    store.update_local("f", [make_file("old/file"), make_dir("old")])
    store.update_remote(
        "f",
        DEV_A,
        [
            make_file("b/z.txt", ((2, 1),)),
            make_dir("b", ((2, 1),)),
            make_file("a", ((2, 1),)),
            make_dir("b/c", ((2, 1),)),
            make_dir("a b", ((2, 1),)),
            make_deleted("old", ((1, 1), (2, 1))),
            make_deleted("old/file", ((1, 1), (2, 1))),
        ],
    )
    assert needed(store) == ["a b", "b", "b/c", "a", "b/z.txt", "old", "old/file"]
    # Streaming in tiny batches gives the same sequence.
    assert [fi.name for fi in store.iter_need("f", batch_size=2)] == needed(store)


def test_clear_and_drop_recompute(store: IndexStore) -> None:
    store.update_local("f", [make_file("x", ((1, 1),))])
    store.update_remote("f", DEV_A, [make_file("x", ((1, 1), (2, 2)))])
    store.update_remote("f", DEV_B, [make_file("x", ((1, 1), (2, 1)))])
    store.update_remote("f", DEV_B, [make_file("only-b", ((3, 1),))])
    assert store.get_global("f", "x").version == ((1, 1), (2, 2))
    store.clear_remote("f", DEV_A)
    assert store.get_global("f", "x").version == ((1, 1), (2, 1))
    assert store.devices_with_global("f", "x") == [DEV_B]
    assert needed(store) == ["only-b", "x"]
    store.clear_remote("f", DEV_B)
    assert store.get_global("f", "only-b") is None
    assert store.get_global("f", "x").version == ((1, 1),)
    assert needed(store) == []
    # Dropping the local device: everything valid is needed again.
    store.update_remote("f", DEV_A, [make_file("x", ((1, 1),)), make_file("y", ((2, 1),))])
    store.drop_device("f", LOCAL)
    assert needed(store) == ["x", "y"]
    assert store.counts("f") == Counts()


def expected_need(g: FileInfo, local: FileInfo | None) -> bool:
    if g.invalid:
        return False
    if local is None:
        return not g.deleted
    if local.version == g.version:
        return False
    if local.invalid:
        return compare(local.version, g.version) != Ordering.GREATER
    return True  # a valid local entry with another version lost to the global


def test_local_entry_superseded_by_a_loser_still_needs_the_global(store: IndexStore) -> None:
    """wins_over is not transitive: the local entry beats the global on mtime, but a third
    entry supersedes it and loses to the global. The local device must still pull."""
    local = make_file("x", ((1, 5),), modified_ns=300)
    newer_than_local = make_file("x", ((1, 5), (3, 1)), modified_ns=100)
    concurrent = make_file("x", ((2, 1),), modified_ns=200)
    store.update_local("f", [local])
    store.update_remote("f", DEV_B, [newer_than_local])
    store.update_remote("f", DEV_A, [concurrent])
    g = store.get_global("f", "x")
    assert g.version == pick_global([local, concurrent, newer_than_local]).version
    assert g.version == concurrent.version
    assert not wins_over(g, local)
    assert needed(store) == ["x"]


def test_invalid_local_change_newer_than_global_is_kept(store: IndexStore) -> None:
    store.update_remote("f", DEV_A, [make_file("x", ((2, 1),))])
    store.update_local("f", [make_file("x", ((1, 1), (2, 1)), invalid=True)])
    assert store.get_global("f", "x").version == ((2, 1),)
    assert needed(store) == []
    store.update_local("f", [make_file("x", ((1, 2),), invalid=True)])  # concurrent: loses
    assert needed(store) == ["x"]


def test_random_operations_match_a_model(store: IndexStore) -> None:
    """Random writes from three devices; after each, every name's global and need equal
    what pick_global and the need rule give over a plain-Python model."""
    run_against_model(store, random.Random(1234), [f"n{i}" for i in range(8)], 3, 150)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_mixing_new_and_known_names_match_a_model(store: IndexStore, seed: int) -> None:
    """Larger batches over more names, so a local batch often mixes names no device has
    had (stored in bulk) with names some device has (stored one by one)."""
    run_against_model(store, random.Random(seed), [f"d{i % 5}/n{i}" for i in range(80)], 25, 60)


def run_against_model(
    store: IndexStore, rng: random.Random, names: list[str], batch_max: int, steps: int
) -> None:
    model: dict[bytes, dict[str, FileInfo]] = {LOCAL: {}, DEV_A: {}, DEV_B: {}}
    for step in range(steps):
        device = rng.choice([LOCAL, DEV_A, DEV_B])
        batch = []
        for name in rng.sample(names, rng.randint(1, batch_max)):
            base = rng.choice([model[d].get(name) for d in model] + [None])
            version = vector.update(base.version if base else (), SHORT[device], step)
            if rng.random() < 0.3:  # sometimes a concurrent (unrelated) version
                version = vector.make([(SHORT[device], rng.randint(1, 200))])
            kind = rng.random()
            if kind < 0.2:
                fi = make_deleted(name, tuple(version), modified_ns=rng.randint(0, 3))
            elif kind < 0.3:
                fi = make_dir(name, tuple(version), modified_ns=rng.randint(0, 3))
            else:
                fi = make_file(
                    name,
                    tuple(version),
                    content=f"{step}",
                    size=rng.randint(0, 9),
                    modified_ns=rng.randint(0, 3),
                    invalid=kind > 0.9,
                )
            batch.append(fi)
        if device == LOCAL:
            stored = store.update_local("f", batch)
        elif rng.random() < 0.1:
            store.clear_remote("f", device)
            model[device].clear()
            stored = []
        else:
            store.update_remote("f", device, batch)
            stored = batch
        for fi in stored:
            model[device][fi.name] = fi
        check_against_model(store, model, names, step)


def check_against_model(
    store: IndexStore, model: dict[bytes, dict[str, FileInfo]], names: list[str], step: int
) -> None:
    needed_now = {fi.name for fi in store.iter_need("f")}
    stored_versions = dict(
        store._conn().execute(
            "SELECT g.name, g.version FROM globals g JOIN folders fo ON fo.id = g.folder "
            "WHERE fo.name = 'f'"
        )
    )
    for name in names:
        candidates = [model[d][name] for d in (LOCAL, DEV_A, DEV_B) if name in model[d]]
        want = pick_global(candidates)
        got = store.get_global("f", name)
        if want is None:
            assert got is None
            continue
        assert got is not None and got.version == want.version
        assert stored_versions[codec.name_key(name)] == codec.encode_vector(want.version)
        assert (got.invalid, got.deleted) == (want.invalid, want.deleted)
        assert got.modified_ns == want.modified_ns
        assert (name in needed_now) == expected_need(want, model[LOCAL].get(name)), (step, name)
        sources = [
            d
            for d in (DEV_A, DEV_B)
            if name in model[d]
            and model[d][name].version == want.version
            and not model[d][name].invalid
        ]
        assert store.devices_with_global("f", name) == sorted(sources)
    assert_counts_exact(store._conn())
    local = list(model[LOCAL].values())
    counts = store.counts("f", LOCAL)
    assert counts.files == sum(1 for fi in local if not fi.deleted and fi.is_file)
    assert counts.deleted == sum(1 for fi in local if fi.deleted)
    assert counts.bytes == sum(fi.size for fi in local if not fi.deleted)
    held = [fi for fi in local if fi.is_file and not fi.deleted and not fi.invalid and fi.blocks]
    for fi in held[:3]:  # the block map knows where local blocks are
        where = {(loc.name, loc.offset) for loc in store.find_block(fi.blocks[0].hash)}
        assert (fi.name, 0) in where


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("ftype", [FileType.FILE, FileType.DIRECTORY, FileType.SYMLINK])
@pytest.mark.parametrize("deleted", [True, False])
@pytest.mark.parametrize("invalid", [True, False])
def test_sole_holder_shortcut_agrees_with_need_level(
    local: bool, ftype: FileType, deleted: bool, invalid: bool
) -> None:
    from p2psync.rules import need_level, sole_holder_need

    entry = FileInfo(
        name="x", type=ftype, deleted=deleted, invalid=invalid, version=vector.make([(7, 3)])
    )
    expected = need_level(entry, entry if local else None)
    assert sole_holder_need(local, int(ftype), deleted, invalid) == expected


def test_holders_of_many_names_match_one_name_at_a_time(store: IndexStore) -> None:
    names = [f"n{i:04d}" for i in range(700)]  # more than one query's worth
    store.update_remote("f", DEV_A, [make_file(n, ((0xA, 1),)) for n in names[::2]])
    store.update_remote("f", DEV_B, [make_file(n, ((0xA, 1),)) for n in names[::3]])
    store.update_remote(  # DEV_B has a newer version of some: only it holds the global
        "f", DEV_B, [make_file(n, ((0xA, 1), (0xB, 1))) for n in names[::12]]
    )
    store.update_remote(  # an invalid entry is nobody's source
        "f", DEV_A, [make_file("bad", ((0xA, 1),), invalid=True)]
    )
    store.update_local("f", [make_file(n, ((0xA, 1),)) for n in names[::5]])  # never listed
    asked = [*names, "bad", "unknown"]
    many = store.devices_with_global_many("f", asked)
    assert many == {name: store.devices_with_global("f", name) for name in asked}
    assert many["n0000"] == [DEV_B]  # its version is newer than DEV_A's
    assert many["n0006"] == sorted([DEV_A, DEV_B])  # the same version on both
    assert many["n0002"] == [DEV_A] and many["unknown"] == [] and many["bad"] == []
    assert store.devices_with_global_many("no such folder", ["x"]) == {"x": []}
