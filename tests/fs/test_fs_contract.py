"""One contract, two filesystems: BasicFS on a real tmp directory and the in-memory FakeFS."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from p2psync.errors import UnsafePathError
from p2psync.fs import BasicFS, FakeFS, FileSystem, read_all, write_all
from p2psync.protocol.fileinfo import FileType


@pytest.fixture(params=["basic", "fake"])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> FileSystem:
    if request.param == "basic":
        root = tmp_path / "folder"
        root.mkdir()
        return BasicFS(root)
    return FakeFS()


def names(fs: FileSystem, dirname: str = "") -> list[str]:
    return sorted(e.name for e in fs.scandir(dirname))


def test_write_then_read_at_offsets(fs: FileSystem) -> None:
    with fs.open_write("f.bin") as h:
        h.write_at(0, b"hello")
        h.write_at(10, b"world")  # a hole is zero-filled
        h.fsync()
        assert h.stat().size == 15
    with fs.open_read("f.bin") as h:
        assert h.read_at(0, 5) == b"hello"
        assert h.read_at(5, 5) == b"\0" * 5
        assert h.read_at(12, 100) == b"rld"  # short only at end of file
        assert h.read_at(15, 10) == b""
    with fs.open_write("f.bin") as h:  # re-open does not truncate
        assert h.read_at(0, 5) == b"hello"
        h.truncate(3)
    assert read_all(fs, "f.bin") == b"hel"


def test_reserve_grows_the_file_and_keeps_its_data(fs: FileSystem) -> None:
    with fs.open_write("big.tmp") as h:
        h.write_at(0, b"head")
        h.reserve(1 << 20)
        assert h.stat().size == 1 << 20
        assert h.read_at(0, 6) == b"head\0\0"
        h.reserve(10)  # never shrinks
        assert h.stat().size == 1 << 20


def test_reserve_beyond_the_free_space_fails_at_once() -> None:
    fake = FakeFS()
    fake.free_bytes = 1000
    with fake.open_write("big.tmp") as h, pytest.raises(OSError) as info:
        h.reserve(1 << 20)
    assert info.value.errno == errno.ENOSPC


def test_open_write_exclusive_refuses_existing(fs: FileSystem) -> None:
    write_all(fs, "f", b"x")
    with pytest.raises(FileExistsError):
        fs.open_write("f", exclusive=True)
    with fs.open_write("g", exclusive=True) as h:
        h.write_at(0, b"new")
    assert read_all(fs, "g") == b"new"


def test_lstat_reports_metadata(fs: FileSystem) -> None:
    with fs.open_write("f", mode=0o600) as h:
        h.write_at(0, b"12345")
    fs.mkdir("d", 0o755)
    fs.set_mtime("f", 1_700_000_000_123_456_789)
    st = fs.lstat("f")
    assert (st.type, st.size, st.permissions) == (FileType.FILE, 5, 0o600)
    assert st.mtime_ns == 1_700_000_000_123_456_789
    assert st.inode != 0 and st.symlink_target == ""
    dst = fs.lstat("d")
    assert (dst.type, dst.size, dst.permissions) == (FileType.DIRECTORY, 0, 0o755)
    assert dst.inode != st.inode
    with pytest.raises(FileNotFoundError):
        fs.lstat("missing")
    with pytest.raises(FileNotFoundError):
        fs.lstat("missing/child")
    with pytest.raises(NotADirectoryError):
        fs.lstat("f/child")


def test_scandir_lists_without_following_symlinks(fs: FileSystem) -> None:
    fs.makedirs("a/b")
    write_all(fs, "a/file", b"abc")
    fs.symlink("b", "a/link")
    entries = {e.name: e.stat for e in fs.scandir("a")}
    assert set(entries) == {"b", "file", "link"}
    assert entries["b"].type == FileType.DIRECTORY
    assert entries["file"].type == FileType.FILE and entries["file"].size == 3
    assert entries["link"].type == FileType.SYMLINK
    assert entries["link"].symlink_target == "b"
    assert names(fs) == ["a"]
    with pytest.raises(UnsafePathError):
        fs.scandir("a/link")
    with pytest.raises(NotADirectoryError):
        fs.scandir("a/file")
    with pytest.raises(FileNotFoundError):
        fs.scandir("nope")


def test_rename_replaces_atomically_and_moves(fs: FileSystem) -> None:
    write_all(fs, "old", b"old content")
    write_all(fs, ".p2psync.new.tmp", b"new content")
    inode = fs.lstat(".p2psync.new.tmp").inode
    fs.rename(".p2psync.new.tmp", "old")
    assert read_all(fs, "old") == b"new content"
    assert fs.lstat("old").inode == inode
    assert names(fs) == ["old"]
    fs.mkdir("d")
    fs.rename("old", "d/moved")
    assert names(fs, "d") == ["moved"]
    with pytest.raises(FileNotFoundError):
        fs.rename("gone", "x")


def test_rename_new_never_replaces(fs: FileSystem) -> None:
    write_all(fs, ".p2psync.a.tmp", b"new")
    write_all(fs, "taken", b"the user's")
    fs.mkdir("dir")
    for dst in ("taken", "dir"):
        with pytest.raises(FileExistsError):
            fs.rename_new(".p2psync.a.tmp", dst)
    assert read_all(fs, "taken") == b"the user's"
    fs.makedirs("d/e")
    fs.rename_new(".p2psync.a.tmp", "d/e/free")
    assert read_all(fs, "d/e/free") == b"new"
    assert names(fs) == ["d", "dir", "taken"]
    with pytest.raises(FileNotFoundError):
        fs.rename_new("gone", "x")


def test_rename_type_rules(fs: FileSystem) -> None:
    fs.makedirs("full/x")
    fs.mkdir("empty")
    fs.mkdir("src")
    write_all(fs, "file", b"")
    with pytest.raises(OSError) as info:
        fs.rename("src", "full")
    assert info.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    with pytest.raises(IsADirectoryError):
        fs.rename("file", "empty")
    with pytest.raises(NotADirectoryError):
        fs.rename("src", "file")
    fs.rename("src", "empty")  # a directory may replace an empty directory
    assert names(fs) == ["empty", "file", "full"]


def test_handle_survives_rename(fs: FileSystem) -> None:
    write_all(fs, "a", b"data")
    with fs.open_read("a") as h:
        fs.rename("a", "b")
        assert h.read_at(0, 4) == b"data"


def test_remove_and_rmdir(fs: FileSystem) -> None:
    fs.makedirs("d/e")
    write_all(fs, "d/f", b"x")
    with pytest.raises(IsADirectoryError):
        fs.remove("d/e")
    with pytest.raises(NotADirectoryError):
        fs.rmdir("d/f")
    with pytest.raises(OSError) as info:
        fs.rmdir("d")
    assert info.value.errno == errno.ENOTEMPTY
    fs.remove("d/f")
    fs.rmdir("d/e")
    fs.rmdir("d")
    assert names(fs) == []
    with pytest.raises(FileNotFoundError):
        fs.remove("d/f")
    with pytest.raises(FileNotFoundError):
        fs.rmdir("d")


def test_mkdir_and_makedirs(fs: FileSystem) -> None:
    fs.mkdir("a", 0o700)
    assert fs.lstat("a").permissions == 0o700
    with pytest.raises(FileExistsError):
        fs.mkdir("a")
    with pytest.raises(FileNotFoundError):
        fs.mkdir("x/y")
    fs.makedirs("a/b/c")
    fs.makedirs("a/b/c")  # existing is fine
    assert fs.lstat("a/b/c").type == FileType.DIRECTORY
    write_all(fs, "file", b"")
    with pytest.raises(NotADirectoryError):
        fs.makedirs("file/sub")


def test_symlink_readlink(fs: FileSystem) -> None:
    fs.symlink("../../outside/target", "l")
    assert fs.readlink("l") == "../../outside/target"
    st = fs.lstat("l")
    assert st.type == FileType.SYMLINK and st.symlink_target == "../../outside/target"
    assert st.size == 0
    with pytest.raises(FileExistsError):
        fs.symlink("other", "l")
    write_all(fs, "f", b"")
    with pytest.raises(OSError):
        fs.readlink("f")
    fs.remove("l")
    assert names(fs) == ["f"]


def test_symlink_is_never_opened_or_chmodded(fs: FileSystem) -> None:
    write_all(fs, "real", b"secret")
    fs.symlink("real", "l")
    with pytest.raises(UnsafePathError):
        fs.open_read("l")
    with pytest.raises(UnsafePathError):
        fs.open_write("l")
    with pytest.raises(UnsafePathError):
        fs.chmod("l", 0o777)
    assert read_all(fs, "real") == b"secret"


def test_chmod_and_set_mtime(fs: FileSystem) -> None:
    write_all(fs, "f", b"x")
    fs.mkdir("d")
    fs.chmod("f", 0o640)
    fs.chmod("d", 0o700)
    assert fs.lstat("f").permissions == 0o640
    assert fs.lstat("d").permissions == 0o700
    fs.set_mtime("d", 1_600_000_000_000_000_000)
    assert fs.lstat("d").mtime_ns == 1_600_000_000_000_000_000
    fs.set_mtime("f", 1_500_000_000_000_000_000)
    fs.symlink("f", "l")
    fs.set_mtime("l", 1_400_000_000_000_000_000)  # the link itself, not its target
    assert fs.lstat("l").mtime_ns == 1_400_000_000_000_000_000
    assert fs.lstat("f").mtime_ns == 1_500_000_000_000_000_000


def test_directory_is_not_a_file(fs: FileSystem) -> None:
    fs.mkdir("d")
    with pytest.raises(IsADirectoryError):
        fs.open_read("d")
    with pytest.raises(IsADirectoryError):
        fs.open_write("d")


BAD_NAMES = ["", "../escape", "/etc/passwd", "a/../../b", "a//b", "./a", "a/.", "a\\b", "nul\0"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_unsafe_names_refused(fs: FileSystem, bad: str) -> None:
    for op in (
        lambda: fs.lstat(bad),
        lambda: fs.open_read(bad),
        lambda: fs.open_write(bad),
        lambda: fs.mkdir(bad),
        lambda: fs.makedirs(bad),
        lambda: fs.remove(bad),
        lambda: fs.symlink("x", bad),
        lambda: fs.rename("ok", bad),
    ):
        with pytest.raises(UnsafePathError):
            op()
    if bad:
        with pytest.raises(UnsafePathError):
            fs.scandir(bad)


def test_symlinked_parent_is_refused(fs: FileSystem) -> None:
    fs.makedirs("real/sub")
    write_all(fs, "real/file", b"inside")
    fs.symlink("real", "link")
    refused = [
        lambda: fs.lstat("link/file"),
        lambda: fs.open_read("link/file"),
        lambda: fs.open_write("link/new"),
        lambda: fs.scandir("link"),
        lambda: fs.scandir("link/sub"),
        lambda: fs.mkdir("link/d"),
        lambda: fs.makedirs("link/d/e"),
        lambda: fs.remove("link/file"),
        lambda: fs.rmdir("link/sub"),
        lambda: fs.rename("link/file", "moved"),
        lambda: fs.rename("real/file", "link/moved"),
        lambda: fs.symlink("x", "link/s"),
        lambda: fs.chmod("link/file", 0o777),
        lambda: fs.set_mtime("link/file", 0),
        lambda: fs.fsync_dir("link"),
    ]
    for op in refused:
        with pytest.raises(UnsafePathError, match="link"):
            op()
    assert names(fs, "real") == ["file", "sub"]
    assert read_all(fs, "real/file") == b"inside"


def test_fsync_dir_free_space_and_case(fs: FileSystem) -> None:
    fs.mkdir("d")
    fs.fsync_dir("")
    fs.fsync_dir("d")
    with pytest.raises(FileNotFoundError):
        fs.fsync_dir("nope")
    assert fs.free_space() > 0
    assert fs.is_case_insensitive() is False
    write_all(fs, "d/Name", b"")
    assert fs.real_name("d/Name") == "d/Name"
    with pytest.raises(FileNotFoundError):
        fs.lstat("d/name")


# ----------------------------------------------------------------- real filesystem only


def test_symlink_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not touch")
    os.symlink(outside, root / "escape")
    fs = BasicFS(root)
    with pytest.raises(UnsafePathError):
        fs.open_read("escape/secret")
    with pytest.raises(UnsafePathError):
        fs.open_write("escape/new")
    with pytest.raises(UnsafePathError):
        fs.remove("escape/secret")
    with pytest.raises(UnsafePathError):
        fs.chmod("escape/secret", 0o777)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"do not touch"
    assert fs.lstat("escape").type == FileType.SYMLINK  # the link itself is fine to see


def test_root_may_be_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "root-link")
    fs = BasicFS(tmp_path / "root-link")
    write_all(fs, "f", b"ok")
    assert (tmp_path / "target" / "f").read_bytes() == b"ok"


def test_missing_root_is_a_filesystem_error(tmp_path: Path) -> None:
    from p2psync.errors import FilesystemError

    fs = BasicFS(tmp_path / "nope")
    with pytest.raises(FilesystemError, match="does not exist"):
        fs.scandir("")


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    from p2psync.errors import FilesystemError

    os.mkfifo(tmp_path / "pipe")
    fs = BasicFS(tmp_path)
    assert fs.lstat("pipe").type is None
    with pytest.raises(FilesystemError):
        fs.open_read("pipe")  # must not hang waiting for a writer


# ----------------------------------------------------------------- fake-only knobs


def test_fake_case_insensitive_preserves_case() -> None:
    fs = FakeFS(case_insensitive=True)
    assert fs.is_case_insensitive()
    fs.mkdir("Docs")
    write_all(fs, "Docs/ReadMe.txt", b"hi")
    assert read_all(fs, "docs/README.TXT") == b"hi"
    assert names(fs, "DOCS") == ["ReadMe.txt"]
    assert fs.real_name("docs/readme.txt") == "Docs/ReadMe.txt"
    with pytest.raises(FileExistsError):
        fs.mkdir("DOCS")
    fs.rename("Docs/ReadMe.txt", "Docs/readme.txt")  # case-only rename
    assert names(fs, "Docs") == ["readme.txt"]
    write_all(fs, "Docs/README.txt", b"replaced")  # same entry, case kept
    assert names(fs, "Docs") == ["readme.txt"]
    assert read_all(fs, "Docs/readme.txt") == b"replaced"


def test_fake_mtime_granularity() -> None:
    fs = FakeFS(mtime_granularity_ns=1_000_000_000, clock_ns=lambda: 1_700_000_000_999_999_999)
    write_all(fs, "f", b"x")
    assert fs.lstat("f").mtime_ns == 1_700_000_000_000_000_000
    fs.set_mtime("f", 1_600_000_000_500_000_000)
    assert fs.lstat("f").mtime_ns == 1_600_000_000_000_000_000
    assert fs.mtime_granularity_ns == 1_000_000_000


def test_fake_read_hook_runs_before_each_read() -> None:
    fs = FakeFS()
    write_all(fs, "f", b"abc")
    seen: list[tuple[str, int]] = []
    fs.read_hook = lambda name, offset: seen.append((name, offset))
    with fs.open_read("f") as h:
        h.read_at(1, 2)
    assert seen == [("f", 1)]


def test_write_handle_sets_mode_and_mtime(fs: FileSystem) -> None:
    with fs.open_write("h.txt") as handle:
        handle.write_at(0, b"abc")
        handle.chmod(0o640)
        handle.set_mtime(1_600_000_000 * 1_000_000_000)
    st = fs.lstat("h.txt")
    assert st.permissions == 0o640
    assert st.mtime_ns == 1_600_000_000 * 1_000_000_000


def test_rename_new_without_renameat2_checks_then_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2psync.fs import noreplace

    monkeypatch.setattr(noreplace, "rename_noreplace", lambda *args: False)
    fs = BasicFS(tmp_path)
    write_all(fs, ".p2psync.a.tmp", b"new")
    write_all(fs, "taken", b"the user's")
    with pytest.raises(FileExistsError):
        fs.rename_new(".p2psync.a.tmp", "taken")
    fs.rename_new(".p2psync.a.tmp", "free")
    assert read_all(fs, "free") == b"new" and read_all(fs, "taken") == b"the user's"
