"""Making a batch of files durable at once: when ``syncfs`` is used, one call per
filesystem, and per-file errors whenever it cannot be trusted."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from p2psync.fs import BasicFS, FakeFS, durable, read_all
from tests.reliability.faults import tmpfs

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="syncfs is Linux-only")


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("6.18.44-fc-v669", True),
        ("5.8.0", True),
        ("5.10.0-21-amd64", True),
        ("5.7.19", False),
        ("4.19.0-27-amd64", False),
        ("5", False),  # unreadable: never trust syncfs with it
        ("custom", False),
    ],
)
def test_syncfs_needs_a_kernel_that_reports_its_errors(release: str, expected: bool) -> None:
    assert durable.kernel_at_least(release, 5, 8) is expected


@linux_only
def test_this_kernel_reports_syncfs_errors() -> None:
    assert durable.syncfs_usable() is durable.kernel_at_least(os.uname().release, 5, 8)


@linux_only
def test_pending_writes_are_read_from_meminfo() -> None:
    pending = durable.pending_write_bytes()
    assert pending is not None and pending >= 0


@pytest.mark.skipif(not durable.syncfs_usable(), reason="needs Linux 5.8 or later")
def test_syncfs_only_for_a_batch_with_little_else_pending() -> None:
    assert durable.syncfs_worthwhile(64, 0)
    assert durable.syncfs_worthwhile(durable.SYNCFS_MIN, durable.PENDING_MAX)
    assert not durable.syncfs_worthwhile(durable.SYNCFS_MIN - 1, 0)  # one file: fsync it
    assert not durable.syncfs_worthwhile(64, durable.PENDING_MAX + 1)  # would wait for others
    assert not durable.syncfs_worthwhile(64, None)  # unknown: do not risk it


@linux_only
def test_one_descriptor_per_filesystem(tmp_path: Path) -> None:
    mounted = tmp_path / "mnt"
    with tmpfs(mounted):
        paths = [tmp_path / "a", tmp_path / "b", mounted / "c", mounted / "d"]
        fds = [os.open(p, os.O_CREAT | os.O_WRONLY, 0o600) for p in paths]
        try:
            assert durable.one_per_filesystem(fds) == [fds[0], fds[2]]
            assert durable.sync_filesystems(fds)
        finally:
            for fd in fds:
                os.close(fd)


@linux_only
def test_a_descriptor_that_is_not_open_fails_the_shared_sync(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "x", os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    assert durable.sync_filesystems([fd]) is False
    with pytest.raises(OSError):
        durable.syncfs(fd)


def test_fsync_each_reports_each_error_in_place() -> None:
    def ok() -> None:
        pass

    def broken() -> None:
        raise OSError(5, "Input/output error")

    errors = durable.fsync_each([ok, broken, ok, ok, broken])
    assert [e is None for e in errors] == [True, False, True, True, False]
    assert all(e is None or e.errno == 5 for e in errors)
    assert durable.fsync_each([broken])[0] is not None  # one alone runs in place


@pytest.mark.parametrize("count", [1, 64])
def test_fsync_files_keeps_every_file(tmp_path: Path, count: int) -> None:
    fs = BasicFS(tmp_path)
    handles = [fs.open_write(f"f{i}", exclusive=True) for i in range(count)]
    try:
        for i, h in enumerate(handles):
            h.write_at(0, b"data %d" % i)
        assert fs.fsync_files(handles) == [None] * count
    finally:
        for h in handles:
            h.close()
    assert [read_all(fs, f"f{i}") for i in range(count)] == [b"data %d" % i for i in range(count)]


def test_fsync_files_names_the_file_that_failed(tmp_path: Path) -> None:
    """A handle that cannot be synced (its descriptor closed underneath) makes the batch
    fall back to one fsync per file, so the error lands on that file alone."""
    fs = BasicFS(tmp_path)
    handles = [fs.open_write(f"f{i}", exclusive=True) for i in range(4)]
    os.close(handles[2].fileno())  # type: ignore[attr-defined]
    try:
        errors = fs.fsync_files(handles)
    finally:
        for i, h in enumerate(handles):
            if i != 2:
                h.close()
    assert [e is None for e in errors] == [True, True, False, True]


@pytest.mark.parametrize("make_fs", [BasicFS, lambda _: FakeFS()], ids=["basic", "fake"])
def test_fsync_dirs_skips_a_directory_that_went_away(tmp_path: Path, make_fs) -> None:
    fs = make_fs(tmp_path)
    fs.makedirs("a/b")
    fs.mkdir("c")
    assert fs.fsync_dirs(["", "a", "a/b", "gone", "c"]) == []
    assert fs.fsync_dirs([]) == []
    assert fs.fsync_dirs(["a/b"]) == []
