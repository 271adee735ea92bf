"""Which of two versions of a name is the global one: one deterministic, pure rule.

Every device applies the same rule to the same inputs, so all agree without talking:

1. A strictly newer version vector wins.
2. Equal vectors: a valid entry beats an invalid one; otherwise they are equivalent.
3. Concurrent vectors (a conflict):
   a. an invalid entry loses to a valid one;
   b. a modification beats a delete (so no edit is ever lost to a concurrent delete);
   c. the later modification time wins;
   d. equal times: the side whose first differing counter (lowest short ID) is higher wins.
"""

from __future__ import annotations

import functools

from .model import FileInfo
from .vector import Ordering, Vector, compare


def first_difference_greater(a: Vector, b: Vector) -> bool:
    """True if, at the lowest short ID where the vectors differ, ``a`` is larger."""
    da, db = dict(a), dict(b)
    for cid in sorted(da.keys() | db.keys()):
        va, vb = da.get(cid, 0), db.get(cid, 0)
        if va != vb:
            return va > vb
    return False


def wins_over(a: FileInfo, b: FileInfo) -> bool:
    """True if ``a`` sorts strictly before ``b`` as a candidate for the global version."""
    order = compare(a.version, b.version)
    if order == Ordering.GREATER:
        return True
    if order == Ordering.LESSER:
        return False
    if order == Ordering.EQUAL:
        return not a.invalid and b.invalid
    if a.invalid != b.invalid:
        return b.invalid
    if a.deleted != b.deleted:
        return b.deleted
    if a.modified_ns != b.modified_ns:
        return a.modified_ns > b.modified_ns
    return first_difference_greater(a.version, b.version)


def _cmp(a: FileInfo, b: FileInfo) -> int:
    if wins_over(a, b):
        return -1
    if wins_over(b, a):
        return 1
    return 0


global_sort_key = functools.cmp_to_key(_cmp)


def _tie_break_key(fi: FileInfo) -> tuple[bool, int, tuple[tuple[int, int], ...]]:
    """Rules 3b-3d as a sort key (larger wins): not deleted, later mtime, then the higher
    counter at the lowest short ID where vectors differ ((-id, value) pairs compare so)."""
    return (not fi.deleted, fi.modified_ns, tuple((-c.id, c.value) for c in fi.version))


def pick_global(candidates: list[FileInfo]) -> FileInfo | None:
    """The global version among the entries all devices hold for one name.

    The best valid entry; the best entry if all are invalid. Only entries whose version no
    other entry supersedes compete: ``wins_over`` applied to the whole list is not
    transitive (a newer vector can lose to a third, concurrent entry on mtime), so
    sorting by it would make the result depend on the input order.
    """
    if not candidates:
        return None
    pool = [fi for fi in candidates if not fi.invalid] or list(candidates)
    heads = [
        fi
        for fi in pool
        if not any(compare(other.version, fi.version) == Ordering.GREATER for other in pool)
    ]
    return max(heads, key=_tie_break_key)


def is_conflict(local: FileInfo, incoming: FileInfo) -> bool:
    """Replacing ``local`` by ``incoming`` loses a concurrent local change."""
    if local.blocks and local.blocks_hash() == incoming.blocks_hash() and not incoming.deleted:
        return False
    return compare(incoming.version, local.version) == Ordering.CONCURRENT
