"""Exhausted resources as states, not exits: which errors mean "the disk is full", "out of
file handles" or "the index cannot be written", and how to tell the user.

Background tasks (a folder's rounds, a connection's index store, start-up writes) catch
``RESOURCE_ERRORS``, show ``describe(exc)`` as the reason, and retry later; a full disk
(``is_disk_full``) pauses a folder until space returns.
"""

from __future__ import annotations

import errno
import sqlite3

from .errors import FilesystemError, IndexError_

RESOURCE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    sqlite3.Error,
    IndexError_,
    FilesystemError,
)

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from (the index wraps sqlite errors)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a file system (or the index's) is out of space."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if isinstance(e, sqlite3.Error | IndexError_) and "disk is full" in str(e):
            return True
    return False


def describe(exc: BaseException) -> str:
    """A one-line reason for the user."""
    if is_disk_full(exc):
        return "insufficient disk space"
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
            return "too many open files (the process's file-handle limit was reached)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def first_leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside ``exc`` (trio nurseries wrap errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
