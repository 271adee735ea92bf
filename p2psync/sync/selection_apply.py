"""Selective sync on disk and in the local index, after the selection changed (or at
start). Blocking: run it in a worker thread, in the folder's loop (never during a scan or
a pull).

Two jobs, both idempotent:

* ``forget_selected``: entries kept as "not selected" whose names are selected again get
  an empty, deleted, invalid local entry, so the cluster's version is needed (and pulled)
  again. Nothing on disk is touched.
* ``trim``: local copies the selection leaves out are removed only when nothing can be
  lost: the local entry is valid and has the global version, another device holds that
  same version, and the disk still holds what the index recorded (the puller's
  never-clobber check). The entry is then kept invalid with its version (``as_not_selected``):
  peers see this device does not hold it, and no deletion is ever announced. Anything
  else (a local change, a file no other device has yet, an ignored file, a directory
  still holding such files) stays, is reported, and keeps syncing as before. Removed
  copies do not go to the versions archive: the same version is on another device.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import FilesystemError
from ..fs.base import FileSystem
from ..protocol import vector
from ..protocol.fileinfo import FileInfo, LocalFileInfo
from ..scanner.scan import FLAG_NOT_SELECTED, FLAG_NOT_SYNCED_HERE, as_not_selected
from ..selection import Selection, is_selected
from .folder_index import FolderIndex
from .pull.base import ItemSkipped

log = logging.getLogger("p2psync.sync.selection")

BATCH = 500
KEPT_LISTED = 1000  # at most this many kept items are named in the status

CheckUnchanged = Callable[[str, FileInfo], object]  # raises ItemSkipped if the disk moved on


@dataclass
class Trimmed:
    removed: int = 0
    removed_bytes: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # name -> why it stayed (bounded)
    kept_count: int = 0
    rescan: list[str] = field(default_factory=list)  # changed on disk since the last scan

    def keep(self, name: str, why: str) -> None:
        self.kept_count += 1
        if len(self.kept) < KEPT_LISTED:
            self.kept[name] = why


def forget_selected(index: FolderIndex, folder: str, selection: Selection) -> int:
    """Make names kept as "not selected" that ``selection`` selects needed again; how many."""
    batch: list[LocalFileInfo] = []
    count = 0
    for local in index.iter_local(folder):
        if not local.local_flags & FLAG_NOT_SELECTED or not is_selected(local.name, selection):
            continue
        count += 1
        batch.append(
            local.with_(
                deleted=True,
                blocks=(),
                size=0,
                version=vector.EMPTY,
                local_flags=0,
                invalid=True,
                inode=0,
                sequence=0,
            )
        )
        if len(batch) >= BATCH:
            index.update_local(folder, batch)
            batch = []
    if batch:
        index.update_local(folder, batch)
    return count


def trim(
    index: FolderIndex,
    folder: str,
    fs: FileSystem,
    selection: Selection,
    check_unchanged: CheckUnchanged,
) -> Trimmed:
    """Remove the in-sync local copies ``selection`` leaves out (see the module)."""
    out = Trimmed()
    if not selection:
        return out
    batch: list[LocalFileInfo] = []
    dirs: list[LocalFileInfo] = []
    for local in index.iter_local(folder):
        if local.deleted or local.local_flags & FLAG_NOT_SYNCED_HERE:
            continue
        if is_selected(local.name, selection):
            continue
        why = _why_kept(index, folder, local)
        if why:
            out.keep(local.name, why)
            continue
        if local.is_directory:
            dirs.append(local)  # once the files below it are gone
            continue
        if _remove(fs, local, check_unchanged, out):
            batch.append(as_not_selected(local))
            out.removed += 1
            out.removed_bytes += local.size
        if len(batch) >= BATCH:
            index.update_local(folder, batch)
            batch = []
    for local in reversed(dirs):  # children before their parents (name order reversed)
        try:
            fs.rmdir(local.name)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (OSError, FilesystemError) as exc:
            if getattr(exc, "errno", None) in (errno.ENOTEMPTY, errno.EEXIST):
                out.keep(local.name, "holds items kept here")
            else:
                out.keep(local.name, f"cannot remove: {exc}")
            continue
        batch.append(as_not_selected(local))
        out.removed += 1
    if batch:
        index.update_local(folder, batch)
    if out.removed or out.kept_count:
        log.info(
            "%s: selective sync removed %d local copies (%d bytes; all on other devices), kept %d",
            folder,
            out.removed,
            out.removed_bytes,
            out.kept_count,
        )
    return out


def _why_kept(index: FolderIndex, folder: str, local: LocalFileInfo) -> str:
    """Why ``local`` must stay on disk, or "" when another device has this very version."""
    if local.invalid:
        return "ignored or changed here (not announced)"
    glob = index.get_global(folder, local.name)
    if glob is None or glob.invalid or glob.version != local.version:
        return "changed here: not yet on another device"
    if not index.devices_with_global(folder, local.name):
        return "no other device has this version yet"
    return ""


def _remove(fs: FileSystem, local: LocalFileInfo, check: CheckUnchanged, out: Trimmed) -> bool:
    try:
        check(local.name, local)
    except ItemSkipped as exc:
        if exc.rescan:
            out.rescan.append(local.name)
        out.keep(local.name, exc.reason)
        return False
    try:
        fs.remove(local.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, FilesystemError) as exc:
        out.keep(local.name, f"cannot remove: {exc}")
        return False
    return True
