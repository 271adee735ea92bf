"""Read views of one folder's conflicts from the index: each copy beside its original.

Blocking (SQLite reads): call from a worker thread. ``names`` maps a device's short ID
(the ``modified_by`` of an entry) to what the user calls it.
"""

from __future__ import annotations

from typing import Any

from ..protocol.fileinfo import FileInfo
from ..sync.resolve import original_of

MAX_CONFLICTS = 1000


def _entry(fi: FileInfo | None, names: dict[int, str]) -> dict[str, Any] | None:
    if fi is None or fi.deleted:
        return None
    return {
        "name": fi.name,
        "size": fi.size,
        "modified": fi.modified_ns / 1e9,
        "by": names.get(fi.modified_by, f"{fi.modified_by:016x}" if fi.modified_by else ""),
    }


def conflict_pairs(index: Any, folder_id: str, names: dict[int, str]) -> list[dict[str, Any]]:
    """Each live conflict copy beside the file it belongs to (None if that is gone)."""
    copies = []
    for fi in index.iter_local(folder_id):
        if fi.deleted or original_of(fi.name) is None:
            continue
        copies.append(fi)
        if len(copies) >= MAX_CONFLICTS:
            break
    originals = index.get_local_many(folder_id, [str(original_of(c.name)) for c in copies])
    return [
        {
            "copy_file": _entry(c, names),
            "original_name": original_of(c.name),
            "original_file": _entry(originals.get(str(original_of(c.name))), names),
        }
        for c in copies
    ]
