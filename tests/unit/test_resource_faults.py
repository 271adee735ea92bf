"""Which errors are a full disk or exhausted file handles, and what the user is told."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from p2psync.errors import IndexError_
from p2psync.resource_faults import describe, first_leaf, is_disk_full


def wrapped(cause: BaseException) -> IndexError_:
    """How the index writer reports a failed job (see index/writer.py)."""
    try:
        raise IndexError_(f"writing the index failed: {cause}") from cause
    except IndexError_ as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        sqlite3.OperationalError("database or disk is full"),
        wrapped(sqlite3.OperationalError("database or disk is full")),
        IndexError_("writing the index failed: database or disk is full"),
    ],
)
def test_a_full_disk_is_recognised(exc: BaseException) -> None:
    assert is_disk_full(exc)
    assert describe(exc) == "insufficient disk space"


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
def test_exhausted_file_handles_are_named(code: int) -> None:
    exc = OSError(code, "Too many open files", "/some/folder")
    assert not is_disk_full(exc)
    assert describe(exc).startswith("too many open files")
    assert describe(wrapped(exc)).startswith("too many open files")


def test_other_errors_keep_their_own_words() -> None:
    assert describe(OSError(errno.EIO, "Input/output error", "/f")) == "Input/output error: /f"
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert describe(IndexError_("the index store is closed")) == "the index store is closed"


def test_first_leaf_opens_nested_groups() -> None:
    inner = OSError(errno.ENOSPC, "No space left on device")
    group = ExceptionGroup("outer", [ExceptionGroup("inner", [inner]), ValueError()])
    assert first_leaf(group) is inner
    assert first_leaf(inner) is inner
