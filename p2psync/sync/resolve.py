"""Resolve a conflict by hand: keep the conflict copy or the file it belongs to.

The side not kept is never deleted: it goes to the folder's versioning (or, when the
folder keeps no versions, into the archive as a tagged copy, as ``versioner.restore``
does), so a wrong click can be undone with a restore. Blocking: call from a worker thread,
then ask the folder to rescan both names.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable

from ..errors import NotFoundError, UsageError
from ..fs.base import FileSystem
from ..fs.internal import is_internal
from ..protocol.fileinfo import FileType
from ..protocol.names import validate_name
from .versioner import Versioner, _archive_tagged

KEEP_CHOICES = ("copy", "original")
_CONFLICT_PART = re.compile(r"\.sync-conflict-\d{8}-\d{6}-[A-Z2-7]{7}")


def original_of(copy: str) -> str | None:
    """``dir/report.docx`` for ``dir/report.sync-conflict-20260101-101010-ABCDEFG.docx``."""
    directory, base = posixpath.split(copy)
    plain, found = _CONFLICT_PART.subn("", base, count=1)
    if not found or not plain:
        return None
    return posixpath.join(directory, plain) if directory else plain


def _is_file(fs: FileSystem, name: str) -> bool:
    try:
        st = fs.lstat(name)
    except FileNotFoundError:
        return False
    if st.type != FileType.FILE:
        raise UsageError(f"{name!r} is not a regular file here; resolve it by hand")
    return True


def _put_aside(fs: FileSystem, name: str, versioner: Versioner, now: float) -> None:
    if not versioner.archive(name) and _is_file(fs, name):
        _archive_tagged(fs, name, now)


def keep_one(
    fs: FileSystem,
    copy: str,
    keep: str,
    *,
    versioner: Versioner,
    now: Callable[[], float] = time.time,
) -> str:
    """Keep ``copy`` (under the original's name) or its original; returns the name kept."""
    if keep not in KEEP_CHOICES:
        raise UsageError(f"keep must be one of {', '.join(KEEP_CHOICES)}, not {keep!r}")
    validate_name(copy)
    original = original_of(copy)
    if original is None or is_internal(copy) or is_internal(original):
        raise UsageError(f"{copy!r} is not a conflict copy")
    if not _is_file(fs, copy):
        raise NotFoundError(f"the conflict copy {copy!r} is gone (already resolved?)")
    if keep == "original":
        _put_aside(fs, copy, versioner, now())
        return original
    if _is_file(fs, original):
        _put_aside(fs, original, versioner, now())
    if _is_file(fs, original):  # written again meanwhile: leave both for the user
        raise UsageError(f"{original!r} changed while resolving; try again")
    fs.rename(copy, original)
    return original
