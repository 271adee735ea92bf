"""Pure decisions of the sync engine, with ``now`` passed in: tested without any I/O."""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Iterable

from ..protocol.fileinfo import FileInfo, LocalFileInfo

CONFLICT_MARKER = ".sync-conflict-"
_CONFLICT_RE = re.compile(r"\.sync-conflict-\d{8}-\d{6}-[A-Z2-7]{7}")


def split_extension(base: str) -> tuple[str, str]:
    """``("report", ".docx")`` for ``report.docx``. A leading dot is not an extension
    (``.bashrc`` has none) — Syncthing's Go ``filepath.Ext`` treats it as one; we knowingly
    keep dotfiles readable instead."""
    dot = base.rfind(".")
    if dot <= 0:
        return base, ""
    return base[:dot], base[dot:]


def conflict_copy_name(name: str, when: dt.datetime, winner_short: str) -> str:
    """``dir/NAME.sync-conflict-YYYYMMDD-HHMMSS-<winner short id>.EXT``.

    ``when`` is the resolving device's local time; ``winner_short`` is the 7-character
    short ID of the device whose (winning) change caused the conflict, as Syncthing does.
    """
    directory, base = posixpath.split(name)
    stem, ext = split_extension(base)
    stamp = when.strftime("%Y%m%d-%H%M%S")
    copy = f"{stem}{CONFLICT_MARKER}{stamp}-{winner_short}{ext}"
    return posixpath.join(directory, copy) if directory else copy


def is_conflict_copy(name: str) -> bool:
    return bool(_CONFLICT_RE.search(posixpath.basename(name)))


def conflict_copies_to_remove(
    original: str, existing: Iterable[str], max_conflicts: int
) -> list[str]:
    """Which conflict copies of ``original`` to delete so that ``max_conflicts`` remain
    (newest kept; -1 keeps all). Names sort by their timestamp, so name order is age order."""
    if max_conflicts < 0:
        return []
    directory, base = posixpath.split(original)
    stem, ext = split_extension(base)
    pattern = re.compile(
        re.escape(stem) + r"\.sync-conflict-\d{8}-\d{6}-[A-Z2-7]{7}" + re.escape(ext) + "$"
    )
    copies = sorted(
        n
        for n in existing
        if posixpath.dirname(n) == directory and pattern.match(posixpath.basename(n))
    )
    keep = max_conflicts
    return copies[: max(0, len(copies) - keep)]


def mass_delete_exceeded(deletes: int, total_files: int, share: float, min_deletes: int) -> bool:
    """True if applying ``deletes`` remote deletions would remove more than ``share`` of the
    folder's ``total_files``, and at least ``min_deletes`` files: the folder pauses until the
    user confirms. Proportional, so a small folder losing most of its files is held too
    (12 files becoming 2); the floor lets a few deletions in a tiny folder through."""
    return deletes >= max(1, min_deletes) and deletes > share * total_files


def same_content(a: FileInfo, b: FileInfo) -> bool:
    """Equal block lists (and so equal bytes): a change can be applied as metadata only."""
    return (
        a.size == b.size
        and len(a.blocks) == len(b.blocks)
        and all(
            x.hash == y.hash and x.size == y.size for x, y in zip(a.blocks, b.blocks, strict=True)
        )
    )


def metadata_matches(
    recorded: LocalFileInfo,
    *,
    size: int,
    mtime_ns: int,
    inode: int,
    permissions: int,
    ignore_perms: bool,
) -> bool:
    """Does what is on disk still match what the index recorded? (the never-clobber check)"""
    if recorded.size != size or recorded.modified_ns != mtime_ns:
        return False
    if recorded.inode and inode and recorded.inode != inode:
        return False
    if not ignore_perms and (recorded.permissions & 0o777) != (permissions & 0o777):
        return False
    return True


def pull_order_key(fi: FileInfo) -> tuple[int, int, str]:
    """Order in which needed items are applied: directories (shallow first) before files,
    deletions last and deepest first (so directories empty out before removal)."""
    depth = fi.name.count("/")
    if fi.deleted:
        return (2, -depth, fi.name)
    if fi.is_directory:
        return (0, depth, fi.name)
    return (1, 0, fi.name)
