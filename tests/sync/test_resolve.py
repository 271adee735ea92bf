"""Resolving a conflict by hand (the web interface's "keep this one"): nothing is lost."""

from __future__ import annotations

import pytest

from p2psync.errors import NotFoundError, UsageError
from p2psync.fs.basic import BasicFS
from p2psync.sync.resolve import keep_one, original_of
from p2psync.sync.versioner import NoVersioning, SimpleVersioning, list_versions

COPY = "docs/x.sync-conflict-20260101-101010-ABCDEFG.txt"


def test_original_of() -> None:
    assert original_of(COPY) == "docs/x.txt"
    assert original_of("x.sync-conflict-20260101-101010-ABCDEFG") == "x"
    assert original_of("docs/x.txt") is None


def make(tmp_path) -> BasicFS:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.txt").write_text("winner\n")
    (tmp_path / COPY).write_text("loser\n")
    return BasicFS(tmp_path)


def test_keeping_the_copy_archives_the_original(tmp_path) -> None:
    fs = make(tmp_path)
    assert keep_one(fs, COPY, "copy", versioner=SimpleVersioning(fs, keep=3)) == "docs/x.txt"
    assert (tmp_path / "docs" / "x.txt").read_text() == "loser\n"
    assert not (tmp_path / COPY).exists()
    (kept,) = list_versions(fs, "docs/x.txt")
    assert (tmp_path / kept.archive_name).read_text() == "winner\n"


def test_keeping_the_original_archives_the_copy_even_without_versioning(tmp_path) -> None:
    fs = make(tmp_path)
    assert keep_one(fs, COPY, "original", versioner=NoVersioning()) == "docs/x.txt"
    assert (tmp_path / "docs" / "x.txt").read_text() == "winner\n"
    assert not (tmp_path / COPY).exists()
    (aside,) = list_versions(fs, COPY)  # a tagged copy: never deleted outright
    assert aside.size == len("loser\n")


def test_refusals(tmp_path) -> None:
    fs = make(tmp_path)
    with pytest.raises(UsageError):
        keep_one(fs, "docs/x.txt", "copy", versioner=NoVersioning())
    with pytest.raises(UsageError):
        keep_one(fs, COPY, "both", versioner=NoVersioning())
    with pytest.raises(NotFoundError):
        keep_one(fs, COPY.replace("ABCDEFG", "BBBBBBB"), "copy", versioner=NoVersioning())
    assert (tmp_path / COPY).read_text() == "loser\n"
