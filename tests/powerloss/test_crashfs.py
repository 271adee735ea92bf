"""crashfs itself: what survives a cut is exactly what was made durable."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from harness import crashfs, mounted, needs_fuse

pytestmark = needs_fuse


def write(path: Path, data: bytes, *, sync: bool = False) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cut(m) -> Path:
    m.cut()
    assert m.wait_cut(30)
    return m.output


def test_passthrough_and_unmount(tmp_path: Path) -> None:
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "old.txt").write_bytes(b"before")
    with crashfs(tmp_path) as m:
        mnt = m.mountpoint
        assert (mnt / "old.txt").read_bytes() == b"before"
        (mnt / "d").mkdir()
        write(mnt / "d" / "f", b"hello")
        os.rename(mnt / "d" / "f", mnt / "g")
        assert sorted(os.listdir(mnt)) == ["d", "g", "old.txt"]
        assert (mnt / "g").read_bytes() == b"hello"
        assert (tmp_path / "backing" / "g").read_bytes() == b"hello"
        os.unlink(mnt / "g")
        os.rmdir(mnt / "d")
        assert os.listdir(mnt) == ["old.txt"]
    assert not mounted(tmp_path / "mnt")


def test_unsynced_changes_are_lost(tmp_path: Path) -> None:
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "old.txt").write_bytes(b"before")
    with crashfs(tmp_path) as m:
        mnt = m.mountpoint
        write(mnt / "old.txt", b"after, never synced")
        write(mnt / "new.txt", b"new, never synced")
        (mnt / "dir").mkdir()
        out = cut(m)
    assert sorted(os.listdir(out)) == ["old.txt"]
    assert (out / "old.txt").read_bytes() == b"before"


def test_file_sync_without_dir_sync_loses_the_name(tmp_path: Path) -> None:
    with crashfs(tmp_path) as m:
        write(m.mountpoint / "new.txt", b"data", sync=True)
        out = cut(m)
    assert os.listdir(out) == []


def test_dir_sync_without_file_sync_keeps_an_empty_file(tmp_path: Path) -> None:
    with crashfs(tmp_path) as m:
        write(m.mountpoint / "new.txt", b"data")
        fsync_dir(m.mountpoint)
        out = cut(m)
    assert (out / "new.txt").read_bytes() == b""


def test_both_synced_survives_and_later_writes_do_not(tmp_path: Path) -> None:
    with crashfs(tmp_path) as m:
        write(m.mountpoint / "f", b"v1", sync=True)
        fsync_dir(m.mountpoint)
        with open(m.mountpoint / "f", "r+b") as f:
            f.write(b"XX-longer")
        out = cut(m)
    assert (out / "f").read_bytes() == b"v1"


def test_rename_over_needs_the_directory_sync(tmp_path: Path) -> None:
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "f").write_bytes(b"old")
    with crashfs(tmp_path) as m:
        write(m.mountpoint / "tmp", b"new", sync=True)
        os.rename(m.mountpoint / "tmp", m.mountpoint / "f")
        assert (m.mountpoint / "f").read_bytes() == b"new"
        out = cut(m)
    assert sorted(os.listdir(out)) == ["f"]
    assert (out / "f").read_bytes() == b"old"  # the replaced inode's content survives


def test_rename_over_with_directory_sync(tmp_path: Path) -> None:
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "f").write_bytes(b"old")
    with crashfs(tmp_path) as m:
        write(m.mountpoint / "tmp", b"new", sync=True)
        os.rename(m.mountpoint / "tmp", m.mountpoint / "f")
        fsync_dir(m.mountpoint)
        out = cut(m)
    assert sorted(os.listdir(out)) == ["f"]
    assert (out / "f").read_bytes() == b"new"


def test_directory_rename_and_cross_directory_move(tmp_path: Path) -> None:
    b = tmp_path / "backing"
    (b / "a").mkdir(parents=True)
    (b / "a" / "x").write_bytes(b"x")
    (b / "c").mkdir()
    with crashfs(tmp_path) as m:
        mnt = m.mountpoint
        os.rename(mnt / "a", mnt / "b")  # root not synced: "a" survives
        os.rename(mnt / "b" / "x", mnt / "c" / "x")
        fsync_dir(mnt / "c")  # target synced, source not: under both names
        out = cut(m)
    assert sorted(os.listdir(out)) == ["a", "c"]
    assert (out / "a" / "x").read_bytes() == b"x"
    assert (out / "c" / "x").read_bytes() == b"x"


def test_unlinked_file_survives_until_its_directory_is_synced(tmp_path: Path) -> None:
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "keep").write_bytes(b"content")
    (tmp_path / "backing" / "gone").write_bytes(b"bye")
    with crashfs(tmp_path) as m:
        os.unlink(m.mountpoint / "keep")
        os.unlink(m.mountpoint / "gone")
        (m.mountpoint / "sub").mkdir()
        os.rmdir(m.mountpoint / "sub")
        assert os.listdir(m.mountpoint) == []
        out = cut(m)
    assert sorted(os.listdir(out)) == ["gone", "keep"]
    assert (out / "keep").read_bytes() == b"content"


def test_truncate_and_mode_are_durable_only_after_fsync(tmp_path: Path) -> None:
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "f").write_bytes(b"0123456789")
    os.chmod(tmp_path / "backing" / "f", 0o644)
    with crashfs(tmp_path) as m:
        os.truncate(m.mountpoint / "f", 3)
        os.chmod(m.mountpoint / "f", 0o600)
        out = cut(m)
    assert (out / "f").read_bytes() == b"0123456789"
    assert (out / "f").stat().st_mode & 0o777 == 0o644


def test_syncfs_makes_nothing_durable(tmp_path: Path) -> None:
    """The kernel answers syncfs for FUSE without asking crashfs: success, nothing kept."""
    libc = ctypes.CDLL(None, use_errno=True)
    with crashfs(tmp_path) as m:
        write(m.mountpoint / "f", b"data")
        fd = os.open(m.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert libc.syncfs(fd) == 0
        finally:
            os.close(fd)
        out = cut(m)
    assert os.listdir(out) == []


def test_armed_cut_stops_before_the_nth_sync(tmp_path: Path) -> None:
    import threading

    with crashfs(tmp_path) as m:
        mnt = m.mountpoint
        m.arm(3)
        done: list[int] = []

        def writer() -> None:
            for i in range(5):
                try:
                    write(mnt / f"f{i}", b"x", sync=True)  # sync 1, 3, 5, ...
                    fsync_dir(mnt)  # sync 2, 4, ...
                except OSError:
                    return
                done.append(i)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        assert m.wait_cut(30)
        out = m.output
        assert os.listdir(out) == ["f0"]  # f1's data sync was the third: not applied
        assert (out / "f0").read_bytes() == b"x"
    t.join(timeout=30)
    assert not t.is_alive()
