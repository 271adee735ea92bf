"""Needed files whose content is a needed deletion, applied as local renames.

When a peer renamed a file, this device needs "``gone`` deleted" and "``fi`` created with
the same content". Renaming the local ``gone`` to ``fi`` moves no data. Each pair is
checked first (never clobber: the source must still be what the index says, the target
must be free); the records the renames will leave are then noted in the index
(``IndexStore.note_applying``), and only then are the files renamed, so a daemon killed
between a rename and its record adopts the result at its next start instead of taking it
for a local edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import FilesystemError
from ..fs.base import FileStat
from ..fs.internal import is_internal
from ..protocol.model import FileInfo

if TYPE_CHECKING:
    from .puller import Puller


def apply_renames(puller: Puller, pairs: Sequence[tuple[FileInfo, FileInfo]]) -> list[bool]:
    """Blocking, one worker-thread job: rename each (new, gone) pair that is safe to;
    whether each was applied (False: nothing touched, pull ``new`` the normal way)."""
    from .puller import ItemSkipped

    done = [False] * len(pairs)
    with puller.fs.cached_dirs():
        ready: list[tuple[int, FileInfo, FileInfo, FileStat]] = []
        for i, (fi, gone) in enumerate(pairs):
            if is_internal(fi.name) or is_internal(gone.name):
                continue
            try:
                st = _source_if_safe(puller, fi, gone)
            except (ItemSkipped, OSError, FilesystemError):
                continue
            if st is not None:
                ready.append((i, fi, gone, st))
        if not ready:
            return done
        noted: list[tuple[FileInfo, FileStat | None]] = []
        for _, fi, gone, st in ready:
            noted += [(fi, _after_rename(puller, fi, st)), (gone, None)]
        puller.note_applying(noted)
        for i, fi, gone, _ in ready:
            try:
                done[i] = _rename(puller, fi, gone)
            except (OSError, FilesystemError):
                done[i] = False
    return done


def _source_if_safe(puller: Puller, fi: FileInfo, gone: FileInfo) -> FileStat | None:
    """The source's stat if renaming ``gone`` to ``fi`` is safe, else None."""
    from .puller import same_blocks

    cur_src = puller.index.get_local(puller.folder, gone.name)
    if cur_src is None or cur_src.deleted or not cur_src.is_file:
        return None
    if not same_blocks(cur_src, fi):
        return None
    st = puller.check_unchanged(gone.name, cur_src)
    cur = puller.index.get_local(puller.folder, fi.name)
    if (cur is not None and not cur.deleted) or puller.stat_or_none(fi.name) is not None:
        return None
    return st


def _after_rename(puller: Puller, fi: FileInfo, st: FileStat) -> FileStat:
    """What ``lstat(fi.name)`` will say once the source is renamed and its metadata set."""
    permissions = st.permissions
    if not puller.ignore_permissions and not fi.no_permissions:
        permissions = fi.permissions & 0o777
    return st._replace(mtime_ns=fi.modified_ns, permissions=permissions)


def _rename(puller: Puller, fi: FileInfo, gone: FileInfo) -> bool:
    if puller.stat_or_none(fi.name) is not None:  # taken since the check
        return False
    puller.make_parent(fi.name)
    # Announce the new place of these blocks before moving them, so a parallel local copy
    # that misses the old place finds the new one (see Puller.find_local).
    puller.remember_blocks(fi)
    puller.fs.rename(gone.name, fi.name)
    if not puller.ignore_permissions and not fi.no_permissions:
        puller.fs.chmod(fi.name, fi.permissions & 0o777)
    puller.fs.set_mtime(fi.name, fi.modified_ns)
    puller.mark_dirty(gone.name.rpartition("/")[0], fi.name.rpartition("/")[0])
    puller.record(fi, puller.fs.lstat(fi.name))
    puller.record(gone, None)
    puller.stats.renames += 1
    return True
