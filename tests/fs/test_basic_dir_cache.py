"""BasicFS.cached_dirs(): directory descriptors reused within a batch, never a way around
the no-symlink rule, never a stale view of our own renames and removals."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from p2psync.errors import UnsafePathError
from p2psync.fs import BasicFS, read_all, write_all
from p2psync.fs import basic as basic_mod


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fs(tmp_path: Path) -> BasicFS:
    root = tmp_path / "folder"
    root.mkdir()
    return BasicFS(root)


def test_a_batch_of_operations_works_and_closes_every_descriptor(fs: BasicFS) -> None:
    before = open_fds()
    with fs.cached_dirs():
        fs.makedirs("a/b/c")
        for i in range(50):
            write_all(fs, f"a/b/c/f{i}.tmp", b"x" * i)
            fs.rename(f"a/b/c/f{i}.tmp", f"a/b/c/f{i}")
        assert open_fds() > before  # the chain a, a/b, a/b/c is held
        assert fs.lstat("a/b/c/f7").size == 7
        assert sorted(e.name for e in fs.scandir("a/b"))[0] == "c"
    assert open_fds() == before
    assert read_all(fs, "a/b/c/f49") == b"x" * 49


def test_nested_use_is_one_cache(fs: BasicFS) -> None:
    fs.makedirs("d")
    before = open_fds()
    with fs.cached_dirs():
        fs.lstat("d")
        with fs.cached_dirs():
            fs.scandir("d")
        held = open_fds()
        assert held > before  # the inner block did not close the outer block's descriptors
    assert open_fds() == before


def test_a_symlink_planted_during_the_batch_is_still_refused(fs: BasicFS) -> None:
    outside = Path(fs.root).parent / "outside"
    outside.mkdir()
    with fs.cached_dirs():
        write_all(fs, "ok.txt", b"fine")
        os.symlink(outside, Path(fs.root) / "link")
        with pytest.raises(UnsafePathError):
            write_all(fs, "link/evil.txt", b"escaped?")
    assert not (outside / "evil.txt").exists()


def test_our_own_directory_rename_is_seen_at_once(fs: BasicFS) -> None:
    fs.makedirs("old/inner")
    with fs.cached_dirs():
        write_all(fs, "old/inner/a.txt", b"a")  # caches old and old/inner
        fs.rename("old", "new")
        with pytest.raises(FileNotFoundError):
            fs.lstat("old/inner/a.txt")
        with pytest.raises(FileNotFoundError):
            write_all(fs, "old/inner/b.txt", b"b")
        assert read_all(fs, "new/inner/a.txt") == b"a"
    assert not (Path(fs.root) / "new" / "inner" / "b.txt").exists()


def test_a_directory_removed_and_made_again_is_the_new_one(fs: BasicFS) -> None:
    fs.mkdir("d")
    with fs.cached_dirs():
        fs.lstat("d")
        write_all(fs, "d/x", b"1")
        fs.remove("d/x")
        fs.rmdir("d")
        fs.mkdir("d")
        write_all(fs, "d/y", b"2")
    assert (Path(fs.root) / "d" / "y").read_bytes() == b"2"


def test_the_cache_stays_bounded(fs: BasicFS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(basic_mod, "_DIR_CACHE_MAX", 8)
    for i in range(30):
        fs.makedirs(f"p{i}/q")
    before = open_fds()
    with fs.cached_dirs():
        for i in range(30):
            write_all(fs, f"p{i}/q/f", str(i).encode())
            assert open_fds() - before <= 8
    assert open_fds() == before
    assert all(read_all(fs, f"p{i}/q/f") == str(i).encode() for i in range(30))


def test_the_cache_belongs_to_the_thread_that_opened_it(fs: BasicFS) -> None:
    fs.makedirs("shared")
    seen: list[int] = []
    with fs.cached_dirs():
        fs.scandir("shared")

        def other() -> None:
            seen.append(0 if fs._cache() is None else 1)

        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert seen == [0]
