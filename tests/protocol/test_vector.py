"""Properties of version vectors (vector.py). The rules built on them (which version
wins, need, conflicts) are tested in tests/unit/test_rules.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
