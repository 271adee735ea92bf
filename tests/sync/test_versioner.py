"""The versioner on a real folder (BasicFS in tmp_path) and on the in-memory fake."""

from __future__ import annotations

import datetime as dt
import errno
import inspect
import os
import sys
from pathlib import Path

import pytest

from p2psync.config import VersioningConfig
from p2psync.errors import ConfigError, FilesystemError, NotFoundError, UnsafePathError, UsageError
from p2psync.fs import BasicFS, FakeFS, FileSystem, read_all, write_all
from p2psync.fs.internal import VERSIONS_DIR, temp_name
from p2psync.protocol.fileinfo import FileType
from p2psync.sync.versioner import (
    DAY_S,
    CleaningVersioner,
    NoVersioning,
    SimpleVersioning,
    StaggeredVersioning,
    TrashcanVersioning,
    list_versions,
    make_versioner,
    restore,
)

T0 = dt.datetime(2025, 3, 1, 14, 22, 33, tzinfo=dt.UTC).timestamp()
MTIME = 1_700_000_000_123_456_789


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["basic", "fake"])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> FileSystem:
    if request.param == "basic":
        root = tmp_path / "folder"
        root.mkdir()
        return BasicFS(root)
    return FakeFS()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def put(fs: FileSystem, name: str, data: bytes) -> None:
    parent = name.rpartition("/")[0]
    if parent:
        fs.makedirs(parent)
    write_all(fs, name, data, mtime_ns=MTIME)


def exists(fs: FileSystem, name: str) -> bool:
    try:
        fs.lstat(name)
    except FileNotFoundError:
        return False
    return True


def contents(fs: FileSystem, name: str) -> list[bytes]:
    return [read_all(fs, v.archive_name) for v in list_versions(fs, name)]


# ---------------------------------------------------------------- each kind


def test_none_keeps_nothing(fs: FileSystem) -> None:
    put(fs, "a.txt", b"v1")
    versioner = make_versioner(fs, VersioningConfig(type="none"))
    assert isinstance(versioner, NoVersioning)
    assert versioner.archive("a.txt") is False
    assert read_all(fs, "a.txt") == b"v1"
    assert versioner.clean() == 0
    assert not exists(fs, VERSIONS_DIR)


def test_make_versioner_maps_the_config(fs: FileSystem) -> None:
    simple = make_versioner(fs, VersioningConfig(type="simple", keep=7, cleanout_days=3))
    assert isinstance(simple, SimpleVersioning) and (simple.keep, simple.cleanout_days) == (7, 3)
    trash = make_versioner(fs, VersioningConfig(type="trashcan", cleanout_days=9))
    assert isinstance(trash, TrashcanVersioning) and trash.cleanout_days == 9
    staggered = make_versioner(fs, VersioningConfig(type="staggered", max_age_days=30))
    assert isinstance(staggered, StaggeredVersioning) and staggered.max_age_days == 30
    with pytest.raises(ConfigError):
        make_versioner(fs, VersioningConfig(type="external"))


def test_trashcan_archives_lists_and_restores(fs: FileSystem, clock: Clock) -> None:
    versioner = TrashcanVersioning(fs, cleanout_days=0, now=clock)
    put(fs, "a.txt", b"old")
    assert versioner.archive("a.txt") is True
    assert not exists(fs, "a.txt")
    assert read_all(fs, ".p2pversions/a.txt") == b"old"
    [entry] = list_versions(fs)
    assert (entry.name, entry.size, entry.archive_name) == ("a.txt", 3, ".p2pversions/a.txt")
    assert entry.version_time == dt.datetime.fromtimestamp(T0, dt.UTC)  # the archive time

    clock.t += 60
    put(fs, "a.txt", b"newer")
    assert versioner.archive("a.txt") is True
    assert contents(fs, "a.txt") == [b"newer"]  # the newer copy replaced the older one

    assert restore(fs, "a.txt", versioner=versioner) == ".p2pversions/a.txt"
    assert read_all(fs, "a.txt") == b"newer"
    assert contents(fs, "a.txt") == [b"newer"]  # restoring copies: the archive keeps it


def test_simple_keeps_the_newest_n(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, keep=3, now=clock)
    for i in range(5):
        put(fs, "notes.md", f"v{i}".encode())
        assert versioner.archive("notes.md") is True
        clock.t += 10
    assert contents(fs, "notes.md") == [b"v2", b"v3", b"v4"]
    names = [v.archive_name for v in list_versions(fs, "notes.md")]
    assert names[0] == ".p2pversions/notes~20250301-142253.md"
    # the archived copy keeps the file's own mtime, so a restore brings it back unchanged
    assert fs.lstat(names[0]).mtime_ns == MTIME


def test_staggered_thins_on_archive_and_on_clean(fs: FileSystem, clock: Clock) -> None:
    versioner = StaggeredVersioning(fs, max_age_days=10, now=clock)
    for i, step in enumerate([0, 10, 30]):  # archived at T0, T0+10 s, T0+40 s
        clock.t += step
        put(fs, "a.bin", f"v{i}".encode())
        versioner.archive("a.bin")
    # T0+10 s fell in the first version's 30 s slot and went at once; T0+40 s did not
    assert contents(fs, "a.bin") == [b"v0", b"v2"]
    # two hours later both are past the first hour, where one per hour is kept
    assert versioner.clean(now=T0 + 2 * 3600) == 1
    assert contents(fs, "a.bin") == [b"v0"]
    assert versioner.clean(now=T0 + 11 * DAY_S) == 1  # past the maximum age
    assert list_versions(fs) == []
    assert fs.scandir(VERSIONS_DIR) == []


def test_nested_names_and_dotfiles(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, keep=5, now=clock)
    names = ["docs/2025/report.final.docx", "docs/Makefile", "docs/.env", "x~y.tar.gz"]
    for name in names:
        put(fs, name, name.encode())
        assert versioner.archive(name)
    listed = {v.name: v.archive_name for v in list_versions(fs)}
    assert listed == {
        "docs/2025/report.final.docx": ".p2pversions/docs/2025/report.final~20250301-142233.docx",
        "docs/Makefile": ".p2pversions/docs/Makefile~20250301-142233",
        "docs/.env": ".p2pversions/docs/.env~20250301-142233",
        "x~y.tar.gz": ".p2pversions/x~y.tar~20250301-142233.gz",
    }
    assert [v.name for v in list_versions(fs, "docs/Makefile")] == ["docs/Makefile"]
    assert list_versions(fs, "docs/missing.txt") == []
    assert list_versions(fs, "nowhere/at/all") == []
    for name in names:
        restore(fs, name, versioner=versioner)
        assert read_all(fs, name) == name.encode()


def test_listing_skips_temp_files_and_empty_archive(fs: FileSystem, clock: Clock) -> None:
    assert list_versions(fs) == []
    put(fs, "a", b"1")
    SimpleVersioning(fs, now=clock).archive("a")
    write_all(fs, VERSIONS_DIR + "/" + temp_name("a"), b"partial")
    assert [v.name for v in list_versions(fs)] == ["a"]


def test_missing_directory_and_symlink_are_not_versioned(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, now=clock)
    assert versioner.archive("missing.txt") is False
    fs.mkdir("dir")
    assert versioner.archive("dir") is False
    fs.symlink("/etc/passwd", "link")
    assert versioner.archive("link") is False
    assert fs.lstat("link").type == FileType.SYMLINK  # left for the caller to remove
    assert not exists(fs, VERSIONS_DIR)
    with pytest.raises(UnsafePathError):
        versioner.archive(".p2pversions/a~20250301-142233")


# ---------------------------------------------------------------- restore


def test_restore_at_picks_the_version_at_or_before(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, keep=10, now=clock)
    for i in range(3):  # archived at T0, T0+100, T0+200
        put(fs, "a.txt", f"v{i}".encode())
        versioner.archive("a.txt")
        clock.t += 100
    utc = dt.UTC

    def at(offset: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(T0 + offset, utc)

    restore(fs, "a.txt", at(150), versioner=NoVersioning())
    assert read_all(fs, "a.txt") == b"v1"
    fs.remove("a.txt")
    restore(fs, "a.txt", at(100), versioner=NoVersioning())  # exactly at: that one
    assert read_all(fs, "a.txt") == b"v1"
    fs.remove("a.txt")
    naive_local = dt.datetime.fromtimestamp(T0 + 250)  # naive means local time
    restore(fs, "a.txt", naive_local, versioner=NoVersioning())
    assert read_all(fs, "a.txt") == b"v2"
    with pytest.raises(NotFoundError, match="at or before"):
        restore(fs, "a.txt", at(-1), versioner=NoVersioning())
    with pytest.raises(NotFoundError):
        restore(fs, "never.txt", versioner=NoVersioning())


def test_restore_archives_the_current_file_first(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, keep=1, now=clock)
    put(fs, "d/a.txt", b"old")
    versioner.archive("d/a.txt")
    clock.t += 5
    put(fs, "d/a.txt", b"current")
    restored = restore(fs, "d/a.txt", versioner=versioner)
    assert restored == ".p2pversions/d/a~20250301-142233.txt"
    assert read_all(fs, "d/a.txt") == b"old"
    # keep=1 pruned the restored version, but the current content is safe in the archive
    assert contents(fs, "d/a.txt") == [b"current"]
    assert fs.lstat("d/a.txt").mtime_ns == MTIME
    assert sorted(e.name for e in fs.scandir("d")) == ["a.txt"]  # no temp left


def test_restore_with_trashcan_keeps_the_current_copy(fs: FileSystem, clock: Clock) -> None:
    versioner = TrashcanVersioning(fs, now=clock)
    put(fs, "a.txt", b"trashed")
    versioner.archive("a.txt")
    put(fs, "a.txt", b"current")
    restore(fs, "a.txt", versioner=versioner)
    assert read_all(fs, "a.txt") == b"trashed"
    assert contents(fs, "a.txt") == [b"current"]


def test_restore_without_versioning_still_loses_nothing(fs: FileSystem, clock: Clock) -> None:
    put(fs, "a.txt", b"old")  # versions may remain from an earlier setting
    SimpleVersioning(fs, now=clock).archive("a.txt")
    put(fs, "a.txt", b"current")
    restore(fs, "a.txt", versioner=NoVersioning(), now=lambda: T0 + 60)
    assert read_all(fs, "a.txt") == b"old"
    assert contents(fs, "a.txt") == [b"old", b"current"]


def test_restore_into_a_deleted_directory(fs: FileSystem, clock: Clock) -> None:
    versioner = TrashcanVersioning(fs, now=clock)
    put(fs, "gone/deep/f", b"data")
    versioner.archive("gone/deep/f")
    fs.rmdir("gone/deep")
    fs.rmdir("gone")
    restore(fs, "gone/deep/f", versioner=versioner)
    assert read_all(fs, "gone/deep/f") == b"data"


def test_restore_refuses_a_directory_or_symlink_in_the_way(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, now=clock)
    put(fs, "a", b"v")
    versioner.archive("a")
    fs.mkdir("a")
    with pytest.raises(UsageError, match="directory"):
        restore(fs, "a", versioner=versioner)
    fs.rmdir("a")
    fs.symlink("elsewhere", "a")
    with pytest.raises(UsageError, match="symlink"):
        restore(fs, "a", versioner=versioner)
    assert fs.readlink("a") == "elsewhere"
    assert sorted(e.name for e in fs.scandir("")) == [VERSIONS_DIR, "a"]


def test_restore_refuses_while_the_puller_writes_the_file(fs: FileSystem, clock: Clock) -> None:
    versioner = SimpleVersioning(fs, now=clock)
    put(fs, "a", b"v")
    versioner.archive("a")
    write_all(fs, temp_name("a"), b"puller's partial file")
    with pytest.raises(UsageError, match="try again"):
        restore(fs, "a", versioner=versioner)
    assert read_all(fs, temp_name("a")) == b"puller's partial file"
    assert not exists(fs, "a")


# ---------------------------------------------------------------- cleanup


def test_trashcan_clean_by_age(fs: FileSystem, clock: Clock) -> None:
    versioner = TrashcanVersioning(fs, cleanout_days=2, now=clock)
    put(fs, "sub/old.txt", b"1")
    versioner.archive("sub/old.txt")
    clock.t += DAY_S
    put(fs, "young.txt", b"2")
    versioner.archive("young.txt")
    assert versioner.clean(now=T0 + 2 * DAY_S - 1) == 0
    assert versioner.clean(now=T0 + 2 * DAY_S + 1) == 1
    assert [v.name for v in list_versions(fs)] == ["young.txt"]
    assert [e.name for e in fs.scandir(VERSIONS_DIR)] == ["young.txt"]  # emptied dir removed
    assert TrashcanVersioning(fs, cleanout_days=0, now=clock).clean(now=T0 + 999 * DAY_S) == 0


def test_simple_clean_applies_a_smaller_keep(fs: FileSystem, clock: Clock) -> None:
    for i in range(4):
        put(fs, "a", bytes([i]))
        SimpleVersioning(fs, keep=5, now=clock).archive("a")
        clock.t += 1
    assert SimpleVersioning(fs, keep=2, now=clock).clean() == 2
    assert contents(fs, "a") == [b"\x02", b"\x03"]


# ---------------------------------------------------------------- collisions in the archive


def test_a_trashed_file_in_the_way_of_a_directory_is_moved_aside(
    fs: FileSystem, clock: Clock
) -> None:
    versioner = TrashcanVersioning(fs, now=clock)
    put(fs, "foo", b"was a file")
    versioner.archive("foo")
    clock.t += 60
    put(fs, "foo/bar", b"now a directory")
    versioner.archive("foo/bar")
    assert {v.name: read_all(fs, v.archive_name) for v in list_versions(fs)} == {
        "foo": b"was a file",
        "foo/bar": b"now a directory",
    }
    assert [v.archive_name for v in list_versions(fs, "foo")] == [
        ".p2pversions/foo~20250301-142233"
    ]


def test_a_trashed_directory_in_the_way_of_a_file_gets_a_tag(fs: FileSystem, clock: Clock) -> None:
    versioner = TrashcanVersioning(fs, now=clock)
    put(fs, "foo/bar", b"inside")
    versioner.archive("foo/bar")
    fs.rmdir("foo")
    put(fs, "foo", b"a file now")
    assert versioner.archive("foo") is True
    assert contents(fs, "foo") == [b"a file now"]
    assert contents(fs, "foo/bar") == [b"inside"]


# ---------------------------------------------------------------- errors lose nothing


class FullDiskFS(FakeFS):
    """The fake with a full disk for renames into the archive, or a failing set_mtime."""

    fail_mtime = False

    def rename(self, src: str, dst: str) -> None:
        if dst.startswith(VERSIONS_DIR + "/") and not self.fail_mtime:
            raise OSError(errno.ENOSPC, "No space left on device", dst)
        super().rename(src, dst)

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        if self.fail_mtime and name.startswith(VERSIONS_DIR + "/"):
            raise PermissionError(errno.EPERM, "Operation not permitted", name)
        super().set_mtime(name, mtime_ns)


def test_disk_full_propagates_and_keeps_the_file(clock: Clock) -> None:
    fs = FullDiskFS()
    put(fs, "a.txt", b"precious")
    for versioner in (TrashcanVersioning(fs, now=clock), SimpleVersioning(fs, now=clock)):
        with pytest.raises(OSError) as info:
            versioner.archive("a.txt")
        assert info.value.errno == errno.ENOSPC
        assert read_all(fs, "a.txt") == b"precious"


def test_a_failure_after_the_move_does_not_raise(clock: Clock) -> None:
    fs = FullDiskFS()
    fs.fail_mtime = True
    put(fs, "a.txt", b"precious")
    assert TrashcanVersioning(fs, now=clock).archive("a.txt") is True  # only logged
    assert contents(fs, "a.txt") == [b"precious"]


# ---------------------------------------------------------------- never outside the folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


def kinds(fs: FileSystem, clock: Clock) -> list[CleaningVersioner]:
    return [
        TrashcanVersioning(fs, now=clock),
        SimpleVersioning(fs, now=clock),
        StaggeredVersioning(fs, now=clock),
    ]


def test_symlinked_versions_dir_is_refused(tmp_path: Path, outside: Path, clock: Clock) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    os.symlink(outside, root / VERSIONS_DIR)  # as if a peer had synced it
    fs = BasicFS(root)
    put(fs, "a.txt", b"keep me")
    for versioner in kinds(fs, clock):
        with pytest.raises(FilesystemError, match="symlink"):
            versioner.archive("a.txt")
        assert read_all(fs, "a.txt") == b"keep me"
        with pytest.raises(FilesystemError):
            versioner.clean()
    with pytest.raises(FilesystemError):
        list_versions(fs)
    with pytest.raises(FilesystemError):
        restore(fs, "a.txt", versioner=NoVersioning())
    assert list(outside.iterdir()) == []


def test_symlinked_directory_inside_the_archive_is_refused(
    tmp_path: Path, outside: Path, clock: Clock
) -> None:
    root = tmp_path / "folder"
    (root / VERSIONS_DIR).mkdir(parents=True)
    os.symlink(outside, root / VERSIONS_DIR / "dir")
    fs = BasicFS(root)
    put(fs, "dir/x.txt", b"keep me")
    put(fs, "other.txt", b"fine")
    for versioner in kinds(fs, clock):
        with pytest.raises(FilesystemError, match="symlink"):
            versioner.archive("dir/x.txt")
        assert read_all(fs, "dir/x.txt") == b"keep me"
        versioner.clean()  # skips the link, touches nothing behind it
    assert SimpleVersioning(fs, now=clock).archive("other.txt") is True
    assert [v.name for v in list_versions(fs)] == ["other.txt"]
    assert list_versions(fs, "dir/x.txt") == []
    assert list(outside.iterdir()) == []


def test_cve_2017_1000420_sequence(tmp_path: Path, outside: Path, clock: Clock) -> None:
    """A peer syncs ``foo -> outside``, deletes it, creates ``foo/bar``, deletes that."""
    root = tmp_path / "folder"
    root.mkdir()
    fs = BasicFS(root)
    for versioner in kinds(fs, clock):
        fs.symlink(str(outside), "foo")
        assert versioner.archive("foo") is False  # symlinks are never versioned ...
        fs.remove("foo")  # ... the puller removes it
        fs.mkdir("foo")
        put(fs, "foo/bar", b"secret")
        assert versioner.archive("foo/bar") is True
        fs.rmdir("foo")
        assert fs.lstat(".p2pversions/foo").type == FileType.DIRECTORY
        clock.t += 3600
    assert list(outside.iterdir()) == []
    assert {v.name for v in list_versions(fs)} == {"foo/bar"}


def test_walking_deep_archives_is_not_recursive(clock: Clock) -> None:
    fs = FakeFS()
    name = "d/" * 300 + "f"
    put(fs, name, b"deep")
    versioner = TrashcanVersioning(fs, cleanout_days=1, now=clock)
    assert versioner.archive(name)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)  # far less than 300 nested calls
    try:
        listed = [v.name for v in list_versions(fs)]
        removed = versioner.clean(now=T0 + 2 * DAY_S)
    finally:
        sys.setrecursionlimit(limit)
    assert listed == [name]
    assert removed == 1
    assert fs.scandir(VERSIONS_DIR) == []
