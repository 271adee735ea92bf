"""Version vectors: pure functions over tuples of (short_id, counter), sorted by short_id.

A vector is an immutable ``Vector`` (a tuple of ``Counter``); counters with value 0 are
never stored. ``now`` is always passed in so the functions stay pure.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple


class Counter(NamedTuple):
    id: int  # short device ID (uint64)
    value: int  # uint64


Vector = tuple[Counter, ...]

EMPTY: Vector = ()


class Ordering(enum.Enum):
    EQUAL = "equal"
    GREATER = "greater"
    LESSER = "lesser"
    CONCURRENT = "concurrent"


def make(pairs: Iterable[tuple[int, int]]) -> Vector:
    """Normalise pairs into a vector: sorted by id, zero counters dropped, ids unique."""
    merged: dict[int, int] = {}
    for cid, value in pairs:
        if value:
            merged[cid] = max(merged.get(cid, 0), value)
    return tuple(Counter(cid, merged[cid]) for cid in sorted(merged))


def update(vector: Vector, short_id: int, now: int) -> Vector:
    """The vector after a local change on ``short_id``: counter = max(counter + 1, now)."""
    current = counter(vector, short_id)
    new_value = max(current + 1, now)
    if not vector:  # a new file's first version (every file of an initial scan)
        return (Counter(short_id, new_value),)
    return make([*((c.id, c.value) for c in vector if c.id != short_id), (short_id, new_value)])


def counter(vector: Vector, short_id: int) -> int:
    for c in vector:
        if c.id == short_id:
            return c.value
    return 0


def merge(a: Vector, b: Vector) -> Vector:
    """Element-wise maximum of two vectors."""
    return make([*a, *b])


def compare(a: Vector, b: Vector) -> Ordering:
    """How ``a`` relates to ``b``."""
    da = dict(a)
    db = dict(b)
    a_bigger = b_bigger = False
    for cid in da.keys() | db.keys():
        va, vb = da.get(cid, 0), db.get(cid, 0)
        if va > vb:
            a_bigger = True
        elif vb > va:
            b_bigger = True
        if a_bigger and b_bigger:
            return Ordering.CONCURRENT
    if a_bigger:
        return Ordering.GREATER
    if b_bigger:
        return Ordering.LESSER
    return Ordering.EQUAL


def dominates_or_equal(a: Vector, b: Vector) -> bool:
    return compare(a, b) in (Ordering.GREATER, Ordering.EQUAL)
