"""Needed deletions, looked at before a pull: which local files a needed new file can be
renamed from, and how many deletions are real (for the mass-delete guard)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..index.reads import Counts
from ..protocol.fileinfo import FileInfo
from .plan import mass_delete_exceeded


class NeedIndex(Protocol):
    def iter_need(self, folder: str) -> Iterator[FileInfo]: ...
    def get_local(self, folder: str, name: str) -> FileInfo | None: ...


class GuardIndex(NeedIndex, Protocol):
    def counts(self, folder: str, device: bytes | None = None) -> Counts: ...


def collect_rename_sources(
    index: NeedIndex, folder: str, limit: int
) -> dict[bytes, list[FileInfo]]:
    """Needed deletions of local files, by content: a needed new file with the same
    content is then applied as a rename of one of them (a remote rename or move costs
    no data copy). Bounded: past ``limit`` the rest are plain copies."""
    sources: dict[bytes, list[FileInfo]] = {}
    count = 0
    for fi in index.iter_need(folder):
        if not fi.deleted:
            continue
        cur = index.get_local(folder, fi.name)
        if cur is None or cur.deleted or cur.invalid or not cur.is_file or not cur.blocks:
            continue  # (an invalid entry here: ignored, not selected, not synced here)
        sources.setdefault(cur.blocks_hash(), []).append(fi)
        count += 1
        if count >= limit:
            break
    return sources


def count_real_deletes(index: NeedIndex, folder: str) -> int:
    """Needed deletions of local files whose content is not re-created by the change. An
    entry that is invalid here (ignored, left out by selective sync, not synced here)
    deletes nothing on this disk, so it does not count."""
    recreated: set[bytes] = set()
    deleted_names: list[str] = []
    for fi in index.iter_need(folder):
        if fi.deleted:
            deleted_names.append(fi.name)
        elif fi.is_file:
            recreated.add(fi.blocks_hash())
    real = 0
    for name in deleted_names:
        cur = index.get_local(folder, name)
        if cur is None or cur.deleted or cur.invalid or cur.is_directory:
            continue
        if cur.is_file and cur.blocks_hash() in recreated:
            continue
        real += 1
    return real


def mass_delete_hold(
    index: GuardIndex, folder: str, local_device: bytes, deletes: int, share: float, minimum: int
) -> str:
    """Why pulling must wait for the user (blocking): the ``deletes`` needed would
    delete too much of the folder (``plan.mass_delete_exceeded``), or "".

    Deletions whose content is re-created elsewhere by the same change (renames,
    moves) do not count: renaming a large directory is not a mass delete."""
    local = index.counts(folder, local_device)
    total = local.files + local.symlinks
    if not mass_delete_exceeded(deletes, total, share, minimum):
        return ""
    real = count_real_deletes(index, folder)
    if not mass_delete_exceeded(real, total, share, minimum):
        return ""
    return (
        f"remote changes would delete {real} of {total} files; "
        f"confirm with `p2psync folder confirm-deletes {folder}`"
    )
