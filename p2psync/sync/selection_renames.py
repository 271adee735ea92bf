"""Selective sync follows a selected directory that a peer renamed.

A peer's rename of ``docs`` to ``documents`` reaches this device as needed deletions of
``docs`` and everything under it, and needed new entries under ``documents``, which the
selection leaves out. Applied as they are, the device would delete the directory the user
chose to keep and never fetch it under its new name. Before a pull, the needed changes
are matched the way a scan's are for a local rename (``selection.follow_renames``: the
selected directory's entries, by relative name and type, all arrive under exactly one
new directory); the selection then follows, and the pull applies the move as local
renames. The new names may already be kept as "not selected" (an earlier pull saw them
before the deletions arrived): those count as arrived too. Blocking: run in a worker
thread.
"""

from __future__ import annotations

from ..scanner.scan import FLAG_NOT_SELECTED
from ..selection import Selection, follow_renames, is_at
from .folder_index import FolderIndex

NAMES_MAX = 100_000  # needed entries looked at, at most


def followed_selection(index: FolderIndex, folder: str, selection: Selection) -> Selection:
    """``selection`` after the renames of selected directories that the needed changes
    hold (the same selection when there are none)."""
    gone: dict[str, bytes | None] = {}
    new: dict[str, bytes | None] = {}
    for seen, fi in enumerate(index.iter_need(folder)):
        if seen >= NAMES_MAX:
            break
        key = None if fi.is_directory else b""  # names and types, as for a local rename
        if fi.deleted:
            if any(is_at(fi.name, p) for p in selection):
                gone[fi.name] = key
        elif not fi.invalid:
            new[fi.name] = key
    if not any(key is None and name in selection for name, key in gone.items()):
        return selection  # no selected directory is deleted: no rename to follow
    for seen, fi in enumerate(index.iter_local(folder)):
        if seen >= NAMES_MAX:
            break
        if fi.local_flags & FLAG_NOT_SELECTED and not fi.deleted:
            new.setdefault(fi.name, None if fi.is_directory else b"")
    return follow_renames(selection, gone, new)
