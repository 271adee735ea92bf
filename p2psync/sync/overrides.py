"""Folder-type operations on the local index: override (send-only) and revert
(receive-only). Blocking: run them in a worker thread."""

from __future__ import annotations

from ..index.store import IndexStore
from ..protocol import vector
from ..protocol.model import FileInfo

FLAG_RECEIVE_ONLY = 1  # local_flags: a local change in a receive-only folder
BATCH = 500


def override_local(index: IndexStore, folder: str, short_id: int, device: bytes, now: int) -> int:
    """Make the cluster match this device: every local entry that differs from the global
    one gets a version that dominates it (a missing local entry becomes a delete).
    Returns the new local max sequence."""
    changed: list[FileInfo] = []
    for global_ in index.iter_global(folder):
        local = index.get_local(folder, global_.name)
        if local is not None and local.version == global_.version:
            continue
        if local is None:
            if global_.deleted:
                continue
            local = global_.with_(deleted=True, blocks=(), size=0)
        merged = vector.merge(local.version, global_.version)
        changed.append(
            local.with_(version=vector.update(merged, short_id, now), modified_by=short_id)
        )
        if len(changed) >= BATCH:
            index.update_local(folder, changed)
            changed = []
    if changed:
        index.update_local(folder, changed)
    return index.max_sequence(folder, device)


def revert_local(index: IndexStore, folder: str) -> int:
    """Drop local changes of a receive-only folder (their versions become empty, so the
    cluster's versions are needed again). Returns how many were reverted."""
    count = 0
    batch: list[FileInfo] = []
    for local in index.iter_local(folder):
        if local.local_flags & FLAG_RECEIVE_ONLY:
            batch.append(local.with_(version=vector.EMPTY, local_flags=0, invalid=True))
            count += 1
        if len(batch) >= BATCH:
            index.update_local(folder, batch)
            batch = []
    if batch:
        index.update_local(folder, batch)
    return count
