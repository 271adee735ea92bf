"""Properties of version vectors (vector.py) and of the global-version rule (ordering.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from p2psync.protocol.model import FileInfo
from p2psync.protocol.ordering import is_conflict, pick_global, wins_over
from p2psync.protocol.vector import (
    EMPTY,
    Counter,
    Ordering,
    compare,
    counter,
    make,
    merge,
    update,
)

PROPS = settings(max_examples=200, deadline=None)

ids = st.integers(0, 2**64 - 1) | st.integers(0, 5)  # small ids make overlaps likely
values = st.integers(1, 2**40) | st.integers(1, 5)
vectors = st.lists(st.tuples(ids, values), max_size=6).map(make)
now = st.integers(0, 2**40)

OPPOSITE = {
    Ordering.GREATER: Ordering.LESSER,
    Ordering.LESSER: Ordering.GREATER,
    Ordering.EQUAL: Ordering.EQUAL,
    Ordering.CONCURRENT: Ordering.CONCURRENT,
}


def dense(v: tuple[Counter, ...]) -> dict[int, int]:
    return {c.id: c.value for c in v}


# -- vectors -----------------------------------------------------------------------------


@PROPS
@given(vectors)
def test_make_is_canonical(v: tuple[Counter, ...]) -> None:
    assert [c.id for c in v] == sorted({c.id for c in v})
    assert all(c.value > 0 for c in v)
    assert make(v) == v


@PROPS
@given(vectors, ids, now)
def test_update_makes_the_vector_greater(v: tuple[Counter, ...], sid: int, t: int) -> None:
    assert compare(update(v, sid, t), v) is Ordering.GREATER
    assert compare(v, update(v, sid, t)) is Ordering.LESSER


@PROPS
@given(vectors, ids, now)
def test_update_counter_is_max_of_old_plus_one_and_now(
    v: tuple[Counter, ...], sid: int, t: int
) -> None:
    new = update(v, sid, t)
    assert counter(new, sid) == max(counter(v, sid) + 1, t)
    others = {k: x for k, x in dense(new).items() if k != sid}
    assert others == {k: x for k, x in dense(v).items() if k != sid}


def test_update_from_empty_starts_at_now_or_one() -> None:
    assert update(EMPTY, 7, 1_700_000_000) == (Counter(7, 1_700_000_000),)
    assert update(EMPTY, 7, 0) == (Counter(7, 1),)
    # a device whose clock went backwards still moves forward
    assert update(((Counter(7, 1_700_000_000)),), 7, 5) == (Counter(7, 1_700_000_001),)


@PROPS
@given(vectors, vectors)
def test_compare_is_antisymmetric(a: tuple[Counter, ...], b: tuple[Counter, ...]) -> None:
    assert compare(b, a) is OPPOSITE[compare(a, b)]


@PROPS
@given(vectors, vectors)
def test_compare_equal_means_identical(a: tuple[Counter, ...], b: tuple[Counter, ...]) -> None:
    assert (compare(a, b) is Ordering.EQUAL) == (a == b)


@PROPS
@given(vectors, vectors, vectors)
def test_dominance_is_transitive(c, x, y) -> None:  # type: ignore[no-untyped-def]
    b = merge(c, x)  # b >= c
    a = merge(b, y)  # a >= b
    assert compare(b, c) in (Ordering.GREATER, Ordering.EQUAL)
    assert compare(a, b) in (Ordering.GREATER, Ordering.EQUAL)
    assert compare(a, c) in (Ordering.GREATER, Ordering.EQUAL)
    assert compare(c, a) in (Ordering.LESSER, Ordering.EQUAL)


@PROPS
@given(vectors, vectors)
def test_merge_is_commutative(a: tuple[Counter, ...], b: tuple[Counter, ...]) -> None:
    assert merge(a, b) == merge(b, a)


@PROPS
@given(vectors, vectors, vectors)
def test_merge_is_associative(a, b, c) -> None:  # type: ignore[no-untyped-def]
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@PROPS
@given(vectors)
def test_merge_is_idempotent(a: tuple[Counter, ...]) -> None:
    assert merge(a, a) == a
    assert merge(a, EMPTY) == a


@PROPS
@given(vectors, vectors)
def test_merge_dominates_both_and_is_the_least_such(
    a: tuple[Counter, ...], b: tuple[Counter, ...]
) -> None:
    m = merge(a, b)
    for x in (a, b):
        assert compare(m, x) in (Ordering.GREATER, Ordering.EQUAL)
    keys = dense(a).keys() | dense(b).keys()
    assert dense(m) == {k: max(dense(a).get(k, 0), dense(b).get(k, 0)) for k in keys}


@PROPS
@given(vectors, ids, ids, now, now)
def test_independent_updates_are_concurrent(
    base: tuple[Counter, ...], x: int, y: int, t1: int, t2: int
) -> None:
    if x == y:
        return
    assert compare(update(base, x, t1), update(base, y, t2)) is Ordering.CONCURRENT


# -- the global-version rule -------------------------------------------------------------

files = st.builds(
    FileInfo,
    name=st.just("f"),
    version=vectors,
    modified_ns=st.integers(0, 5) | st.integers(0, 2**62),
    deleted=st.booleans(),
    invalid=st.booleans() | st.just(False),
)


def signature(fi: FileInfo | None) -> object:
    """What all devices must agree on: the version and the facts the rule looks at."""
    if fi is None:
        return None
    return (fi.version, fi.deleted, fi.invalid, fi.modified_ns)


@PROPS
@given(st.lists(files, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_pick_global_does_not_depend_on_input_order(candidates: list[FileInfo], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    assert signature(pick_global(shuffled)) == signature(pick_global(candidates))
    assert signature(pick_global(list(reversed(candidates)))) == signature(pick_global(candidates))


def test_pick_global_with_a_cycle_of_pairwise_wins() -> None:
    """a > b by vector, b beats c on mtime, c beats a on mtime: a pairwise sort would
    depend on input order. Only a and c (not superseded) compete; c is later."""
    a = FileInfo("x", version=make([(1, 2)]), modified_ns=1)
    b = FileInfo("x", version=make([(1, 1)]), modified_ns=10)
    c = FileInfo("x", version=make([(2, 1)]), modified_ns=5)
    assert wins_over(a, b) and wins_over(b, c) and wins_over(c, a)
    for order in ([a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]):
        assert pick_global(order) is c


@PROPS
@given(st.lists(files, min_size=1, max_size=6))
def test_pick_global_is_a_candidate_that_nothing_valid_supersedes(
    candidates: list[FileInfo],
) -> None:
    g = pick_global(candidates)
    assert g is not None and g in candidates
    if any(not c.invalid for c in candidates):
        assert not g.invalid
        for c in candidates:
            if not c.invalid:
                assert compare(c.version, g.version) is not Ordering.GREATER


def test_pick_global_of_nothing_is_none() -> None:
    assert pick_global([]) is None


@PROPS
@given(files, files)
def test_wins_over_is_total_and_asymmetric(a: FileInfo, b: FileInfo) -> None:
    """Never both; neither only for equal vectors with the same validity (equivalent)."""
    ab, ba = wins_over(a, b), wins_over(b, a)
    assert not (ab and ba)
    if not ab and not ba:
        assert compare(a.version, b.version) is Ordering.EQUAL and a.invalid == b.invalid


@PROPS
@given(files, files)
def test_wins_over_is_deterministic(a: FileInfo, b: FileInfo) -> None:
    assert wins_over(a, b) == wins_over(a.with_(), b.with_())


@PROPS
@given(vectors, ids, ids, now, now, st.integers(0, 2**62), st.integers(0, 2**62))
def test_a_modification_beats_a_concurrent_delete(
    base: tuple[Counter, ...], x: int, y: int, t1: int, t2: int, m1: int, m2: int
) -> None:
    if x == y:
        return
    edit = FileInfo("f", version=update(base, x, t1), modified_ns=m1)
    delete = FileInfo("f", version=update(base, y, t2), modified_ns=m2, deleted=True)
    assert wins_over(edit, delete) and not wins_over(delete, edit)
    assert pick_global([delete, edit]) is edit
    assert pick_global([edit, delete]) is edit


@PROPS
@given(vectors, ids, ids, now, now, st.integers(0, 2**62), st.integers(0, 2**62))
def test_the_later_mtime_wins_among_concurrent_edits(
    base: tuple[Counter, ...], x: int, y: int, t1: int, t2: int, m1: int, m2: int
) -> None:
    if x == y or m1 == m2:
        return
    one = FileInfo("f", version=update(base, x, t1), modified_ns=m1)
    two = FileInfo("f", version=update(base, y, t2), modified_ns=m2)
    later = one if m1 > m2 else two
    assert pick_global([one, two]) is later
    assert pick_global([two, one]) is later


@PROPS
@given(vectors, ids, now, st.integers(0, 2**62))
def test_a_newer_version_wins_whatever_its_mtime(
    base: tuple[Counter, ...], x: int, t: int, m: int
) -> None:
    old = FileInfo("f", version=base or make([(1, 1)]), modified_ns=2**62)
    new = FileInfo("f", version=update(old.version, x, t), modified_ns=m, deleted=True)
    assert pick_global([old, new]) is new


@PROPS
@given(vectors, ids, now)
def test_a_valid_entry_beats_an_invalid_one(base: tuple[Counter, ...], x: int, t: int) -> None:
    newer_invalid = FileInfo("f", version=update(base, x, t), invalid=True)
    valid = FileInfo("f", version=base or make([(1, 1)]))
    assert pick_global([newer_invalid, valid]) is valid
    assert pick_global([newer_invalid]) is newer_invalid


@PROPS
@given(vectors, ids, ids, now, now)
def test_concurrent_changes_are_conflicts_sequential_ones_are_not(
    base: tuple[Counter, ...], x: int, y: int, t1: int, t2: int
) -> None:
    local = FileInfo("f", version=update(base, x, t1))
    assert not is_conflict(local, FileInfo("f", version=update(local.version, y, t2)))
    if x != y:
        assert is_conflict(local, FileInfo("f", version=update(base, y, t2)))
