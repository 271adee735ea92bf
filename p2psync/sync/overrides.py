"""Folder-type operations on the local index: override (send-only) and revert
(receive-only). Blocking: run them in a worker thread."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import FilesystemError
from ..fs.base import FileSystem
from ..protocol import vector
from ..protocol.fileinfo import FileInfo, FileType, LocalFileInfo
from .folder_index import FolderIndex

log = logging.getLogger("p2psync.sync.overrides")

Archive = Callable[[str], bool]  # moves a file into the versions archive; False: not there

FLAG_RECEIVE_ONLY = 1  # LocalFileInfo.local_flags: a local change in a receive-only folder
BATCH = 500


def override_local(index: FolderIndex, folder: str, short_id: int, device: bytes, now: int) -> int:
    """Make the cluster match this device: every local entry that differs from the global
    one gets a version that dominates it (a missing local entry becomes a delete).
    Returns the new local max sequence."""
    changed: list[LocalFileInfo] = []
    for global_ in index.iter_global(folder):
        local = index.get_local(folder, global_.name)
        if local is not None and local.version == global_.version:
            continue
        if local is None:
            if global_.deleted:
                continue
            local = global_.as_local().with_(deleted=True, blocks=(), size=0)
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


def revert_local(
    index: FolderIndex, folder: str, fs: FileSystem | None = None, archive: Archive | None = None
) -> int:
    """Drop local changes of a receive-only folder so the cluster's versions are pulled
    again. Returns how many were reverted.

    Like Syncthing's revert, nothing local survives it, and nothing is lost: with ``fs``
    and ``archive``, a locally added or modified file is moved into the versions archive
    (then recorded as absent, so a modified one is pulled back as a new file); a locally
    added symlink is removed and an added directory removed once empty. The other
    changes (deletions, directories and symlinks the cluster has) get an empty version,
    so the global one is needed again. Never announced: every entry stays invalid."""
    count = 0
    batch: list[LocalFileInfo] = []
    added_dirs: list[LocalFileInfo] = []
    for local in index.iter_local(folder):
        if not local.local_flags & FLAG_RECEIVE_ONLY:
            continue
        count += 1
        gone = False
        if fs is not None and archive is not None and not local.deleted:
            if local.is_directory and _added(index, folder, local):
                added_dirs.append(local)  # removed once its files are archived
                continue
            gone = _put_aside(index, folder, fs, archive, local)
        batch.append(_absent(local) if gone else _reset(local))
        if len(batch) >= BATCH:
            index.update_local(folder, batch)
            batch = []
    for local in reversed(added_dirs):  # children before their parents
        try:
            fs.rmdir(local.name)  # type: ignore[union-attr]
            batch.append(_absent(local))
        except (OSError, FilesystemError) as exc:
            log.info("%s: revert kept the added directory %s: %s", folder, local.name, exc)
            batch.append(_reset(local))
    if batch:
        index.update_local(folder, batch)
    return count


def _reset(local: LocalFileInfo) -> LocalFileInfo:
    """The entry with an empty version: the global one is needed again."""
    return local.with_(version=vector.EMPTY, local_flags=0, invalid=True)


def _absent(local: LocalFileInfo) -> LocalFileInfo:
    """The entry of an item revert moved away (never announced: invalid)."""
    return local.with_(
        deleted=True, blocks=(), size=0, version=vector.EMPTY, local_flags=0, invalid=True
    )


def _added(index: FolderIndex, folder: str, local: FileInfo) -> bool:
    """Whether the cluster has no version of ``local``'s name."""
    glob = index.get_global(folder, local.name)
    return glob is None or glob.invalid or glob.deleted


def _put_aside(
    index: FolderIndex, folder: str, fs: FileSystem, archive: Archive, local: FileInfo
) -> bool:
    """Move a locally changed file or added symlink out of the way; True when it is gone."""
    try:
        if local.is_file:
            archive(local.name)
        elif local.is_symlink and _added(index, folder, local):
            st = fs.lstat(local.name)
            if st.type == FileType.SYMLINK:
                log.info(
                    "%s: revert removed the added symlink %s -> %s",
                    folder,
                    local.name,
                    st.symlink_target,
                )
                fs.remove(local.name)
        else:
            return False  # the cluster's version is pulled over it
        fs.lstat(local.name)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, FilesystemError) as exc:
        log.warning("%s: revert could not move %s aside: %s", folder, local.name, exc)
    return False
