"""Properties of the sync rules (p2psync/rules.py): which version wins, what is needed,
what is a conflict, what is equivalent — over random version vectors and entries."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType, LocalFileInfo
from p2psync.protocol.vector import EMPTY, Ordering, Vector, compare, make, merge, update
from p2psync.rules import (
    NEED_DELETE,
    NEED_DIRECTORY,
    NEED_FILE,
    NEED_NONE,
    _tie_break_key,
    equivalent,
    first_difference_greater,
    global_and_need,
    is_conflict,
    need_level,
    pick_global,
    sole_holder_need,
    wins_over,
)

# No deadline and no "too slow" health check: a loaded machine slows generation, and a
# timing failure would say nothing about the rules.
PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Short IDs are uint64: small ones make shared counters likely, big ones (2**63 and up
# would be negative if anything compared them signed) check the unsigned order.
ids = st.integers(1, 4) | st.integers(0, 2**64 - 1)
values = st.integers(1, 3) | st.integers(1, 2**40)
vectors = st.lists(st.tuples(ids, values), max_size=5).map(make)
nonempty_vectors = st.lists(st.tuples(ids, values), min_size=1, max_size=5).map(make)
now = st.integers(0, 2**40)
mtimes = st.integers(0, 3) | st.integers(0, 2**62)
types = st.sampled_from([FileType.FILE, FileType.DIRECTORY, FileType.SYMLINK])
hashes = st.sampled_from([bytes([n]) * 32 for n in range(3)])
block_lists = st.lists(hashes, max_size=3).map(
    lambda hs: tuple(BlockInfo(i * 131072, 131072, h) for i, h in enumerate(hs))
)

# An entry as the ordering rule sees it (its facts vary, the rest is default).
ranked = st.builds(
    FileInfo,
    name=st.just("f"),
    version=vectors,
    modified_ns=mtimes,
    deleted=st.booleans(),
    invalid=st.booleans(),
    type=types,
)

# An entry with every field varied, for the rules that look at content (a local one, so
# that its bookkeeping varies too: the rules take either kind).
entries = st.builds(
    LocalFileInfo,
    name=st.sampled_from(["f", "d/f"]),
    type=types,
    size=st.integers(0, 3),
    permissions=st.sampled_from([0o644, 0o755, 0o100644, 0o600]),
    modified_ns=mtimes,
    modified_by=ids,
    deleted=st.booleans(),
    invalid=st.booleans(),
    no_permissions=st.booleans(),
    version=vectors,
    sequence=st.integers(0, 9),
    block_size=st.sampled_from([0, 131072]),
    blocks=block_lists,
    symlink_target=st.sampled_from(["", "a", "b"]),
    inode=st.integers(0, 9),
    local_flags=st.integers(0, 7),
)
present = entries.map(lambda fi: fi.with_(deleted=False, invalid=False))

candidate_lists = st.lists(ranked, min_size=1, max_size=6)


def signature(fi: FileInfo | None) -> object:
    """What all devices must agree on: the version and the facts the rule looks at."""
    if fi is None:
        return None
    return (fi.version, fi.deleted, fi.invalid, fi.modified_ns)


def at_least(a: Vector, b: Vector) -> bool:
    return compare(a, b) in (Ordering.GREATER, Ordering.EQUAL)


# -- which version wins: pairs -----------------------------------------------------------


@PROPS
@given(ranked, ranked)
def test_wins_over_is_total_and_asymmetric(a: FileInfo, b: FileInfo) -> None:
    """Never both; neither only for equal vectors with the same validity (equivalent)."""
    ab, ba = wins_over(a, b), wins_over(b, a)
    assert not (ab and ba)
    if not ab and not ba:
        assert compare(a.version, b.version) is Ordering.EQUAL and a.invalid == b.invalid


@PROPS
@given(ranked, ranked)
def test_wins_over_follows_vector_dominance(a: FileInfo, b: FileInfo) -> None:
    """A strictly newer vector always wins, whatever its mtime, delete or validity."""
    if compare(a.version, b.version) is Ordering.GREATER:
        assert wins_over(a, b) and not wins_over(b, a)


@PROPS
@given(ranked, entries)
def test_wins_over_looks_only_at_version_validity_delete_and_mtime(
    a: FileInfo, other: FileInfo
) -> None:
    b = other.with_(
        version=a.version, invalid=a.invalid, deleted=a.deleted, modified_ns=a.modified_ns
    )
    assert not wins_over(a, b) and not wins_over(b, a)


def concurrent_to(base: Vector, short_ids: list[int], times: list[int]) -> list[Vector]:
    """Vectors each made from ``base`` by a change on a different device: pairwise
    concurrent."""
    return [update(base, sid, t) for sid, t in zip(short_ids, times, strict=True)]


@PROPS
@given(ranked, ranked, vectors, st.lists(ids, min_size=2, max_size=2, unique=True), now, now)
def test_concurrent_pairs_of_equal_validity_follow_the_tie_break_key(
    a: FileInfo, b: FileInfo, base: Vector, two: list[int], t1: int, t2: int
) -> None:
    """wins_over's rules 3b-3d and pick_global's sort key are the same order."""
    va, vb = concurrent_to(base, two, [t1, t2])
    a, b = a.with_(version=va), b.with_(version=vb, invalid=a.invalid)
    assert wins_over(a, b) == (_tie_break_key(a) > _tie_break_key(b))
    assert _tie_break_key(a) != _tie_break_key(b)  # concurrent vectors never tie


@PROPS
@given(vectors, vectors)
def test_first_difference_is_syncthings_concurrent_greater(a: Vector, b: Vector) -> None:
    """ConcurrentGreater: at the lowest (unsigned) short ID where the counters differ,
    ``a``'s is higher (a missing counter is 0)."""
    da, db = dict(a), dict(b)
    differing = sorted(cid for cid in da.keys() | db.keys() if da.get(cid, 0) != db.get(cid, 0))
    if not differing:
        assert not first_difference_greater(a, b) and not first_difference_greater(b, a)
        return
    first = differing[0]
    assert first_difference_greater(a, b) == (da.get(first, 0) > db.get(first, 0))
    assert first_difference_greater(a, b) != first_difference_greater(b, a)


@PROPS
@given(
    st.lists(ranked, min_size=3, max_size=3),
    vectors,
    st.lists(ids, min_size=3, max_size=3, unique=True),
    st.lists(now | st.integers(0, 3), min_size=3, max_size=3),
)
def test_wins_over_is_transitive_among_mutually_concurrent_valid_entries(
    trio: list[FileInfo], base: Vector, three: list[int], times: list[int]
) -> None:
    """The tie-break alone is a total order; only mixing it with dominance cycles."""
    versions = concurrent_to(base, three, times)
    a, b, c = (fi.with_(invalid=False, version=v) for fi, v in zip(trio, versions, strict=True))
    for x, y, z in ((a, b, c), (b, c, a), (c, a, b), (a, c, b), (b, a, c), (c, b, a)):
        if wins_over(x, y) and wins_over(y, z):
            assert wins_over(x, z)


def test_wins_over_cycles_when_dominance_meets_the_tie_break() -> None:
    """a > b by vector, b beats c on mtime, c beats a on mtime: not transitive, which is
    why pick_global never sorts by it."""
    a = FileInfo("x", version=make([(1, 2)]), modified_ns=1)
    b = FileInfo("x", version=make([(1, 1)]), modified_ns=10)
    c = FileInfo("x", version=make([(2, 1)]), modified_ns=5)
    assert wins_over(a, b) and wins_over(b, c) and wins_over(c, a)


# -- which version wins: the global of a name ----------------------------------------------


@PROPS
@given(candidate_lists, st.randoms(use_true_random=False))
def test_pick_global_does_not_depend_on_input_order(candidates: list[FileInfo], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    assert signature(pick_global(shuffled)) == signature(pick_global(candidates))
    assert signature(pick_global(candidates[::-1])) == signature(pick_global(candidates))


def test_pick_global_with_a_cycle_of_pairwise_wins() -> None:
    """Only a and c (not superseded) compete; c is later. In every input order."""
    a = FileInfo("x", version=make([(1, 2)]), modified_ns=1)
    b = FileInfo("x", version=make([(1, 1)]), modified_ns=10)
    c = FileInfo("x", version=make([(2, 1)]), modified_ns=5)
    for order in ([a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]):
        assert pick_global(order) is c


@PROPS
@given(candidate_lists)
def test_pick_global_is_a_candidate_nothing_valid_supersedes(candidates: list[FileInfo]) -> None:
    g = pick_global(candidates)
    assert g is not None and any(g is c for c in candidates)
    pool = [c for c in candidates if not c.invalid] or candidates
    assert g.invalid == all(c.invalid for c in candidates)
    for c in pool:
        assert compare(c.version, g.version) is not Ordering.GREATER


@PROPS
@given(candidate_lists)
def test_the_global_wins_over_or_equals_every_competitor(candidates: list[FileInfo]) -> None:
    """Among the entries no other supersedes, the global beats each one pairwise (or is
    equivalent to it): the pairwise rule and the pick agree where both apply."""
    g = pick_global(candidates)
    assert g is not None
    pool = [c for c in candidates if not c.invalid] or candidates
    heads = [
        c for c in pool if not any(compare(o.version, c.version) is Ordering.GREATER for o in pool)
    ]
    for c in heads:
        assert not wins_over(c, g)


@PROPS
@given(candidate_lists, ranked, ranked, vectors, ids, now)
def test_an_entry_a_valid_one_supersedes_does_not_change_the_global(
    candidates: list[FileInfo],
    stale: FileInfo,
    newer: FileInfo,
    other: Vector,
    short_id: int,
    t: int,
) -> None:
    """So adding or forgetting a stale entry (clear_remote) cannot move the global."""
    newer = newer.with_(invalid=False, version=update(merge(stale.version, other), short_id, t))
    with_newer = [*candidates, newer]
    assert signature(pick_global([*with_newer, stale])) == signature(pick_global(with_newer))


@PROPS
@given(ranked)
def test_a_sole_entry_is_the_global(fi: FileInfo) -> None:
    assert pick_global([fi]) is fi
    assert pick_global([]) is None


@PROPS
@given(vectors, ids, ids, now, now, mtimes, mtimes)
def test_a_modification_beats_a_concurrent_delete(
    base: Vector, x: int, y: int, t1: int, t2: int, m1: int, m2: int
) -> None:
    """Syncthing 1.x's rule, kept on purpose (2.x lets a delete win): no edit is lost."""
    assume(x != y)
    edit = FileInfo("f", version=update(base, x, t1), modified_ns=m1)
    delete = FileInfo("f", version=update(base, y, t2), modified_ns=m2, deleted=True)
    assert wins_over(edit, delete) and not wins_over(delete, edit)
    assert pick_global([delete, edit]) is edit
    assert pick_global([edit, delete]) is edit


@PROPS
@given(vectors, ids, ids, now, now, mtimes, mtimes)
def test_the_later_mtime_wins_among_concurrent_edits(
    base: Vector, x: int, y: int, t1: int, t2: int, m1: int, m2: int
) -> None:
    assume(x != y and m1 != m2)
    one = FileInfo("f", version=update(base, x, t1), modified_ns=m1)
    two = FileInfo("f", version=update(base, y, t2), modified_ns=m2)
    later = one if m1 > m2 else two
    assert pick_global([one, two]) is later
    assert pick_global([two, one]) is later


@PROPS
@given(vectors, ids, now, mtimes)
def test_a_newer_version_wins_whatever_its_mtime(base: Vector, x: int, t: int, m: int) -> None:
    old = FileInfo("f", version=base or make([(1, 1)]), modified_ns=2**62)
    new = FileInfo("f", version=update(old.version, x, t), modified_ns=m, deleted=True)
    assert pick_global([old, new]) is new


@PROPS
@given(vectors, ids, now)
def test_a_valid_entry_beats_a_newer_invalid_one(base: Vector, x: int, t: int) -> None:
    newer_invalid = FileInfo("f", version=update(base, x, t), invalid=True)
    valid = FileInfo("f", version=base or make([(1, 1)]))
    assert pick_global([newer_invalid, valid]) is valid
    assert pick_global([newer_invalid]) is newer_invalid


@PROPS
@given(ranked)
def test_equal_vectors_a_valid_entry_beats_an_invalid_one(fi: FileInfo) -> None:
    valid, invalid = fi.with_(invalid=False), fi.with_(invalid=True)
    assert wins_over(valid, invalid) and not wins_over(invalid, valid)
    assert pick_global([invalid, valid]) is valid


def test_syncthing_tie_breaks_on_fixed_examples() -> None:
    """The order of docs/interop.md and Syncthing's WinsConflict, with equal mtimes: the
    first differing counter in unsigned short-ID order decides."""
    a = FileInfo("f", version=make([(1, 5), (2, 1)]), modified_ns=7)
    b = FileInfo("f", version=make([(1, 3), (3, 9)]), modified_ns=7)
    assert pick_global([b, a]) is a
    # 2**63 sorts after 1 (it would come first if compared as a signed int64).
    low = FileInfo("f", version=make([(1, 1)]), modified_ns=7)
    high = FileInfo("f", version=make([(2**63, 1)]), modified_ns=7)
    assert pick_global([high, low]) is low
    # A counter missing on one side counts as 0.
    longer = FileInfo("f", version=make([(1, 1), (2, 1)]), modified_ns=7)
    other = FileInfo("f", version=make([(1, 2)]), modified_ns=7)
    assert pick_global([longer, other]) is other


# -- what this device needs --------------------------------------------------------------


@PROPS
@given(ranked, st.none() | ranked)
def test_need_never_asks_for_what_we_have_equal_or_newer(
    g: FileInfo, local: FileInfo | None
) -> None:
    level = need_level(g, local)
    if local is not None and at_least(local.version, g.version):
        assert level is NEED_NONE
    if level is not NEED_NONE and local is not None:
        assert compare(local.version, g.version) in (Ordering.LESSER, Ordering.CONCURRENT)


@PROPS
@given(ranked, st.none() | ranked)
def test_need_level_is_the_pull_phase_of_the_global(g: FileInfo, local: FileInfo | None) -> None:
    level = need_level(g, local)
    if g.invalid:
        assert level is NEED_NONE  # an invalid global is never needed
    elif local is None:
        assert (level is NEED_NONE) == g.deleted  # nothing here: a delete is not needed
    if level is not NEED_NONE:
        want = NEED_DIRECTORY if g.type == FileType.DIRECTORY else NEED_FILE
        assert level == (NEED_DELETE if g.deleted else want)


@PROPS
@given(ranked, ranked, vectors, st.lists(ids, min_size=2, max_size=2, unique=True), now, now)
def test_a_valid_global_newer_than_or_concurrent_with_the_local_entry_is_needed(
    g: FileInfo, local: FileInfo, base: Vector, two: list[int], t1: int, t2: int
) -> None:
    newer = update(local.version, two[0], t1)
    concurrent_pair = concurrent_to(base, two, [t1, t2])
    for g_version, local_version in ((newer, local.version), concurrent_pair):
        g = g.with_(invalid=False, version=g_version)
        assert need_level(g, local.with_(version=local_version)) is not NEED_NONE


@PROPS
@given(ranked, st.booleans())
def test_an_invalid_local_entry_with_the_globals_version_is_not_needed_again(
    g: FileInfo, local_flags: bool
) -> None:
    """An ignored item, or one not synced here, keeps its version and is marked invalid:
    it is not pulled again until the cluster has a newer version."""
    ignored = g.with_(invalid=True).as_local(local_flags=int(local_flags))
    assert need_level(g.with_(invalid=False), ignored) is NEED_NONE


@PROPS
@given(ranked, nonempty_vectors, ranked)
def test_an_entry_reset_to_the_empty_version_needs_the_valid_global(
    g: FileInfo, version: Vector, local: FileInfo
) -> None:
    """A receive-only revert gives the local entry an empty version: the cluster's is
    pulled again (a delete applied as a delete)."""
    reverted = local.with_(version=EMPTY, invalid=True)
    assert need_level(g.with_(version=version, invalid=False), reverted) is not NEED_NONE


@PROPS
@given(st.booleans(), types, st.booleans(), st.booleans(), nonempty_vectors)
def test_the_sole_holder_shortcut_is_need_level(
    local: bool, ftype: FileType, deleted: bool, invalid: bool, version: Vector
) -> None:
    entry = FileInfo("x", type=ftype, deleted=deleted, invalid=invalid, version=version)
    expected = need_level(entry, entry if local else None)
    assert sole_holder_need(local, int(ftype), deleted, invalid) == expected
    assert global_and_need([entry], 0 if local else None) == (0, expected)


@PROPS
@given(candidate_lists, st.data())
def test_global_and_need_picks_the_global_and_prefers_the_local_holder(
    candidates: list[FileInfo], data: st.DataObject
) -> None:
    local_index = data.draw(st.none() | st.integers(0, len(candidates) - 1))
    index, need = global_and_need(candidates, local_index)
    chosen, best = candidates[index], pick_global(candidates)
    assert best is not None
    assert (chosen.version, chosen.invalid) == (best.version, best.invalid)
    local = None if local_index is None else candidates[local_index]
    if local is not None and (local.version, local.invalid) == (best.version, best.invalid):
        assert index == local_index and need is NEED_NONE
    assert need == need_level(chosen, local)


@PROPS
@given(candidate_lists, st.data())
def test_pulling_the_global_satisfies_the_need(
    candidates: list[FileInfo], data: st.DataObject
) -> None:
    """After the local device stores the global's version (what the puller records), it
    holds the global and needs nothing — unless its old entry superseded another one,
    which then competes again (see the next test)."""
    local_index = data.draw(st.none() | st.integers(0, len(candidates) - 1))
    index, need = global_and_need(candidates, local_index)
    assume(need is not NEED_NONE)
    pulled = candidates[index].with_()
    after = list(candidates)
    if local_index is None:
        after.append(pulled)
        local_index = len(after) - 1
    else:
        old = after[local_index]
        assume(not any(compare(old.version, c.version) is Ordering.GREATER for c in candidates))
        after[local_index] = pulled
    new_index, new_need = global_and_need(after, local_index)
    assert new_index == local_index and new_need is NEED_NONE
    assert signature(after[new_index]) == signature(candidates[index])


def test_a_superseded_entry_competes_again_once_its_successor_is_replaced() -> None:
    """Found by the property above; the rule, as in Syncthing, not a bug to fix here.

    The local device has L, which superseded X (still on device B); G on device A is
    concurrent with L and later, so G is global. Once the local device pulls G, L is gone,
    X competes again, and being later than G it is the new global: the cluster converges
    on X. Nothing is lost: L and then G are concurrent with what replaces them, so each
    is kept as a conflict copy. Changing this would make p2psync and Syncthing pick
    different winners for the same entries."""
    local_l = FileInfo("f", version=make([(1, 5)]), modified_ns=1)
    on_b = FileInfo("f", version=make([(1, 4)]), modified_ns=100)
    on_a = FileInfo("f", version=make([(2, 1)]), modified_ns=50)
    assert global_and_need([local_l, on_b, on_a], 0) == (2, NEED_FILE)
    assert is_conflict(local_l, on_a)  # L becomes a conflict copy
    assert global_and_need([on_a.with_(), on_b, on_a], 0) == (1, NEED_FILE)
    assert is_conflict(on_a, on_b)  # G becomes a conflict copy
    assert global_and_need([on_b.with_(), on_b, on_a], 0) == (0, NEED_NONE)
    assert global_and_need([on_b.with_(), on_b, on_a], 2) == (0, NEED_FILE)  # A pulls X too


@PROPS
@given(st.lists(ranked.map(lambda fi: fi.with_(invalid=False)), min_size=1, max_size=5))
def test_devices_that_pull_what_they_need_converge_without_losing_an_edit(
    held: list[FileInfo],
) -> None:
    """Each device holds one entry; one by one, a device that needs the global pulls it.
    They end on one version, in a bounded number of steps (the global moves only when a
    version's last holder gives it up), and every live file replaced by a concurrent
    version was a conflict (so the puller kept it)."""
    held = list(held)
    for _ in range(len(held) ** 2 + 1):
        needy = [(i, global_and_need(held, i)) for i in range(len(held))]
        pulls = [(i, index) for i, (index, need) in needy if need is not NEED_NONE]
        if not pulls:
            break
        device, index = pulls[0]
        global_ = held[index]
        old = held[device]
        if not old.deleted and compare(global_.version, old.version) is Ordering.CONCURRENT:
            assert is_conflict(old.with_(type=FileType.FILE), global_)
        held[device] = global_.with_()
    else:
        raise AssertionError(f"no convergence: {held}")
    assert len({fi.version for fi in held}) == 1


# -- what counts as a conflict -------------------------------------------------------------


@PROPS
@given(vectors, ids, ids, now, now)
def test_concurrent_changes_are_conflicts_sequential_ones_are_not(
    base: Vector, x: int, y: int, t1: int, t2: int
) -> None:
    local = FileInfo("f", version=update(base, x, t1))
    assert not is_conflict(local, FileInfo("f", version=update(local.version, y, t2)))
    if x != y:
        assert is_conflict(local, FileInfo("f", version=update(base, y, t2)))


@PROPS
@given(entries, entries)
def test_only_a_regular_file_we_have_can_conflict(local: FileInfo, incoming: FileInfo) -> None:
    """Directories and symlinks are replaced, a deleted entry has nothing to keep (the
    puller asks only about files it has; the rule says so itself)."""
    if local.deleted or local.type != FileType.FILE:
        assert not is_conflict(local, incoming)


@PROPS
@given(present, entries)
def test_replacing_a_file_never_loses_a_concurrent_change(
    local: FileInfo, incoming: FileInfo
) -> None:
    """Either it is a conflict (the puller keeps the local file as a conflict copy) or
    the incoming entry is not concurrent, or it brings the very same blocks."""
    local = local.with_(type=FileType.FILE)
    if compare(incoming.version, local.version) is Ordering.CONCURRENT:
        same_blocks = bool(local.blocks) and local.blocks == incoming.blocks
        assert is_conflict(local, incoming) or (same_blocks and not incoming.deleted)


@PROPS
@given(entries, entries, vectors)
def test_a_version_at_least_the_local_one_is_never_a_conflict(
    local: FileInfo, incoming: FileInfo, other: Vector
) -> None:
    for version in (local.version, merge(local.version, other)):
        assert not is_conflict(local, incoming.with_(version=version))


@PROPS
@given(vectors, st.lists(ids, min_size=2, max_size=2, unique=True), now, now)
def test_the_loser_of_a_concurrent_edit_is_a_conflict_on_its_device(
    base: Vector, two: list[int], t1: int, t2: int
) -> None:
    """Whichever of two concurrent edits with different content wins, the device holding
    the other sees a conflict when it pulls the winner."""
    a, b = concurrent_to(base, two, [t1, t2])
    blocks_a = (BlockInfo(0, 1, b"a" * 32),)
    blocks_b = (BlockInfo(0, 1, b"b" * 32),)
    one = FileInfo("f", size=1, version=a, blocks=blocks_a, modified_ns=1)
    two = FileInfo("f", size=1, version=b, blocks=blocks_b, modified_ns=2)
    winner = pick_global([one, two])
    loser = two if winner is one else one
    assert winner is not None
    assert need_level(winner, loser) is not NEED_NONE
    assert is_conflict(loser, winner)


# -- when two entries are equivalent -------------------------------------------------------


@PROPS
@given(present, st.booleans())
def test_equivalent_is_reflexive(fi: FileInfo, ignore_perms: bool) -> None:
    assert equivalent(fi, fi, ignore_perms)


@PROPS
@given(present, present, st.booleans())
def test_equivalent_is_symmetric(a: FileInfo, b: FileInfo, ignore_perms: bool) -> None:
    """(``no_permissions`` is the global's say-so, so it is taken from one side: the
    same on both here.)"""
    b = b.with_(no_permissions=a.no_permissions)
    assert equivalent(a, b, ignore_perms) == equivalent(b, a, ignore_perms)


@PROPS
@given(entries, entries, st.booleans())
@example(FileInfo("f", deleted=True), FileInfo("f"), False)  # a delete is not the file
@example(FileInfo("f", invalid=True), FileInfo("f"), False)
def test_a_deleted_or_invalid_entry_is_never_equivalent(
    local: FileInfo, g: FileInfo, ignore_perms: bool
) -> None:
    """On either side: a delete is not the item, and an invalid entry is not a version
    of it anyone may use."""
    if g.deleted or g.invalid or local.deleted or local.invalid:
        assert not equivalent(local, g, ignore_perms)
        assert not equivalent(g, local, ignore_perms)


@PROPS
@given(present, entries, st.booleans())
def test_equivalent_ignores_names_times_versions_and_bookkeeping(
    fi: LocalFileInfo, other: LocalFileInfo, ignore_perms: bool
) -> None:
    """Name, mtime, version, sequence, modified_by, block size and offsets, inode and
    local flags never matter."""
    twin = fi.with_(
        name=other.name,
        modified_ns=other.modified_ns,
        modified_by=other.modified_by,
        version=other.version,
        sequence=other.sequence,
        block_size=other.block_size,
        inode=other.inode,
        local_flags=other.local_flags,
        blocks=tuple(BlockInfo(b.offset + 1, b.size + 1, b.hash) for b in fi.blocks),
    )
    assert equivalent(fi, twin, ignore_perms) and equivalent(twin, fi, ignore_perms)


@PROPS
@given(present, entries, st.booleans())
def test_equivalent_looks_at_the_content_of_the_type_only(
    fi: FileInfo, other: FileInfo, ignore_perms: bool
) -> None:
    """A directory is its type; a symlink its target; a file its size and block hashes.
    Permissions count only in their 0o777 bits, unless ignored."""
    changes: dict[str, object] = {"permissions": (fi.permissions & 0o777) | 0o100000}
    if not fi.is_file:
        changes.update(size=other.size, blocks=other.blocks)
    if not fi.is_symlink:
        changes["symlink_target"] = other.symlink_target
    assert equivalent(fi, fi.with_(**changes), ignore_perms)


@PROPS
@given(present, present)
def test_equivalent_sees_every_difference_it_claims_to(a: FileInfo, b: FileInfo) -> None:
    assume(a.type != b.type or a.permissions & 0o777 != b.permissions & 0o777)
    b = b.with_(no_permissions=False)
    assert not equivalent(a, b, ignore_perms=False)
    same_type = b.with_(type=a.type, permissions=a.permissions)
    if a.is_symlink:
        assert equivalent(a, same_type, False) == (a.symlink_target == b.symlink_target)
    elif a.is_file:
        same = a.size == b.size and [x.hash for x in a.blocks] == [x.hash for x in b.blocks]
        assert equivalent(a, same_type, False) == same
    else:
        assert equivalent(a, same_type, False)


@PROPS
@given(present, present)
@example(FileInfo("f", permissions=0o644), FileInfo("f", permissions=0o600, no_permissions=True))
def test_permissions_do_not_count_when_ignored_or_unknown_on_the_global(
    a: FileInfo, b: FileInfo
) -> None:
    b = b.with_(type=a.type, size=a.size, blocks=a.blocks, symlink_target=a.symlink_target)
    assert equivalent(a, b, ignore_perms=True)
    assert equivalent(a, b.with_(no_permissions=True), ignore_perms=False)


@PROPS
@given(nonempty_vectors, nonempty_vectors)
def test_a_later_merge_of_equivalent_entries_keeps_them_equivalent(a: Vector, b: Vector) -> None:
    """Adopting the global's version (scan_round) changes nothing equivalent sees."""
    fi = FileInfo("f", size=1, version=a, blocks=(BlockInfo(0, 1, b"x" * 32),))
    g = fi.with_(version=merge(a, b))
    assert equivalent(fi, g, False) and equivalent(g, fi, False)
