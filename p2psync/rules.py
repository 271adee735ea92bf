"""The sync rules in one place: which version of a name wins, what counts as a conflict,
when two entries are equivalent, and what this device needs. Pure functions over
``FileInfo`` and version vectors: no I/O, no SQLite, no trio.

The index calls ``pick_global``/``global_and_need``/``need_level`` for every name it
writes (``index/writes.py``, in the write transaction: keep them cheap); the engine calls
``is_conflict`` before it replaces a file and ``equivalent`` when a scan finds what the
cluster already has (``sync/``). Every device applies the same rules to the same inputs,
so all agree without talking.

**Which version is global** (``wins_over``, ``pick_global``; Syncthing's
``WinsConflict``/``fileRow.Compare``):

1. A strictly newer version vector wins.
2. Equal vectors: a valid entry beats an invalid one; otherwise they are equivalent (the
   index prefers the local holder).
3. Concurrent vectors (a conflict):
   a. an invalid entry loses to a valid one;
   b. a modification beats a delete (so no edit is ever lost to a concurrent delete;
      Syncthing 1.x's rule, which 2.x dropped);
   c. the later modification time wins;
   d. equal times: the side whose first differing counter (lowest short ID) is higher
      wins (Syncthing's ``ConcurrentGreater``).

The global is the best valid entry, or the best entry if all are invalid.

**What this device needs** (``need_level``): the global, unless the global is invalid,
or this device has no entry and the global is a delete, or its own entry's version is
equal to or newer than the global's. An entry that is invalid here (ignored, not synced
here, a receive-only change) with the global's version is not needed again.

**What counts as a conflict** (``is_conflict``): replacing a local regular file whose
version is concurrent with the incoming one, unless the incoming one is not a delete and
has the same blocks (then nothing is lost). Directories and symlinks are just replaced.

**Equivalent entries** (``equivalent``): both present and valid, with the same type,
permissions (unless ignored, or unknown on the global) and content: directories by type
alone, symlinks by target, files by size and block hashes. Names, times, versions,
sequence numbers, who modified and the local bookkeeping (inode, flags) do not count.
"""

from __future__ import annotations

from collections.abc import Sequence

from .protocol.fileinfo import FileInfo, FileType
from .protocol.vector import Ordering, Vector, compare

# What ``need_level`` returns (the index stores it in ``globals.need``): None = not
# needed; otherwise the pull phase the item belongs to (iter_need orders by it).
NEED_NONE = None
NEED_DIRECTORY = 1
NEED_FILE = 2  # files and symlinks
NEED_DELETE = 3

# -- which version wins ------------------------------------------------------------------


def first_difference_greater(a: Vector, b: Vector) -> bool:
    """True if, at the lowest short ID where the vectors differ, ``a`` is larger."""
    da, db = dict(a), dict(b)
    for cid in sorted(da.keys() | db.keys()):
        va, vb = da.get(cid, 0), db.get(cid, 0)
        if va != vb:
            return va > vb
    return False


def wins_over(a: FileInfo, b: FileInfo) -> bool:
    """True if ``a`` beats ``b`` as a candidate for the global version (rules 1-3).

    Total and asymmetric on a pair (exactly one wins unless the two are equivalent), but
    not transitive over three entries: a newer vector can lose to a third, concurrent
    entry on the tie-break. ``pick_global`` takes care of that."""
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


def _tie_break_key(fi: FileInfo) -> tuple[bool, int, tuple[tuple[int, int], ...]]:
    """Rules 3b-3d as a sort key (larger wins): not deleted, later mtime, then the higher
    counter at the lowest short ID where vectors differ ((-id, value) pairs compare so)."""
    return (not fi.deleted, fi.modified_ns, tuple((-c.id, c.value) for c in fi.version))


def pick_global(candidates: Sequence[FileInfo]) -> FileInfo | None:
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


# -- what this device needs --------------------------------------------------------------


def need_level(global_: FileInfo, local: FileInfo | None) -> int | None:
    """Whether (and in which pull phase) the local device needs ``global_``.

    Needed unless: the global is invalid; or there is no local entry and the global is a
    delete; or the local version is equal to or newer than the global's. A local entry
    that is concurrent with the global lost to it (else it would be the global), so it
    is needed — which is ``wins_over(global_, local)`` whenever the ordering is a total
    order, and still converges where it is not (a local entry superseded by a third one
    that lost to the global on the tie-break).
    """
    if global_.invalid:
        return NEED_NONE
    if local is None:
        needed = not global_.deleted
    else:
        needed = compare(local.version, global_.version) in (Ordering.LESSER, Ordering.CONCURRENT)
    if not needed:
        return NEED_NONE
    if global_.deleted:
        return NEED_DELETE
    return NEED_DIRECTORY if global_.type == FileType.DIRECTORY else NEED_FILE


def sole_holder_need(local: bool, ftype: int, deleted: bool, invalid: bool) -> int | None:
    """``need_level`` when one device holds the name (so its entry is the global), from
    the plain column values: the local device needs nothing it holds itself; otherwise it
    needs a valid entry that is not a delete."""
    if local or invalid or deleted:
        return NEED_NONE
    return NEED_DIRECTORY if ftype == FileType.DIRECTORY else NEED_FILE


def global_and_need(
    candidates: Sequence[FileInfo], local_index: int | None
) -> tuple[int, int | None]:
    """Which of one name's ``candidates`` (one per holder, non-empty) is the global, and
    the local need that goes with it; ``candidates[local_index]`` is the local device's
    entry, if it has one. Among equivalent holders of the winning version (same vector,
    same validity) the local one is chosen."""
    best = pick_global(candidates)
    assert best is not None
    index = next(i for i, c in enumerate(candidates) if c is best)
    local = None
    if local_index is not None:
        local = candidates[local_index]
        if (local.version, local.invalid) == (best.version, best.invalid):
            index = local_index
    return index, need_level(candidates[index], local)


# -- what counts as a conflict -----------------------------------------------------------


def is_conflict(local: FileInfo, incoming: FileInfo) -> bool:
    """Replacing ``local`` by ``incoming`` loses a concurrent local change.

    Only a regular file this device has can conflict (directories and symlinks are just
    replaced, as in Syncthing); the same blocks arriving again lose nothing."""
    if local.deleted or local.type != FileType.FILE:
        return False
    if local.blocks and local.blocks_hash() == incoming.blocks_hash() and not incoming.deleted:
        return False
    return compare(incoming.version, local.version) == Ordering.CONCURRENT


# -- when two entries are equivalent -----------------------------------------------------


def equivalent(local: FileInfo, global_: FileInfo, ignore_perms: bool) -> bool:
    """Same item as far as syncing is concerned (type, content, permissions). A deleted
    or invalid entry, on either side, is never equivalent to anything."""
    if global_.deleted or global_.invalid or local.deleted or local.invalid:
        return False
    if local.type != global_.type:
        return False
    if not ignore_perms and not global_.no_permissions:
        if (local.permissions & 0o777) != (global_.permissions & 0o777):
            return False
    if local.is_directory:
        return True
    if local.is_symlink:
        return local.symlink_target == global_.symlink_target
    return local.size == global_.size and [b.hash for b in local.blocks] == [
        b.hash for b in global_.blocks
    ]
