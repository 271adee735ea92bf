"""Scanner behaviour on the real filesystem (tmp_path) and on the in-memory fake."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2psync.errors import FilesystemError, UnsafePathError
from p2psync.fs import BasicFS, FakeFS, FileSystem, write_all
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE, BlockInfo, FileInfo, FileType, block_size_for
from p2psync.scanner.blocks import EMPTY_BLOCK_HASH
from p2psync.scanner.scan import FLAG_IGNORED, ScanBatch, ScanProgress, scan

SID = 0x1122334455667788
NOW = 1_700_000_000
T0 = 1_600_000_000 * 10**9  # a fixed mtime for test files (ns)


class DictView:
    """The LocalIndexView contract, backed by a dict (the real one is SQLite)."""

    def __init__(self) -> None:
        self.entries: dict[str, FileInfo] = {}

    def get_local(self, name: str) -> FileInfo | None:
        return self.entries.get(name)

    def iter_local(self, prefix: str = "") -> Iterator[FileInfo]:
        for name in sorted(n for n in self.entries if n.startswith(prefix)):
            yield self.entries[name]

    def store(self, batch: ScanBatch) -> None:
        for info in (*batch.files, *batch.refreshed):
            self.entries[info.name] = info


class Counting:
    """Wraps a FileSystem; counts files opened for reading; can fail listing some dirs."""

    def __init__(self, inner: FileSystem, unreadable: frozenset[str] = frozenset()) -> None:
        self._inner = inner
        self._unreadable = unreadable
        self.opened: list[str] = []

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def open_read(self, name: str) -> Any:
        self.opened.append(name)
        return self._inner.open_read(name)

    def scandir(self, dirname: str) -> Any:
        if dirname in self._unreadable:
            raise PermissionError(13, "Permission denied", dirname)
        return self._inner.scandir(dirname)


@pytest.fixture(params=["basic", "fake"])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> FileSystem:
    if request.param == "basic":
        root = tmp_path / "folder"
        root.mkdir()
        return BasicFS(root)
    return FakeFS()


def put(fs: FileSystem, name: str, data: bytes, mtime_ns: int = T0) -> None:
    parent = name.rpartition("/")[0]
    if parent:
        fs.makedirs(parent)
    write_all(fs, name, data, mtime_ns=mtime_ns)


def run(fs: Any, view: DictView, *, now: int = NOW, store: bool = True, **kw: Any) -> ScanBatch:
    """Scan, store results in the view, return all batches merged into one."""
    merged = ScanBatch()
    for batch in scan(fs, view, short_id=SID, now=lambda: now, **kw):
        assert batch, "the scanner never yields an empty batch"
        merged.files.extend(batch.files)
        merged.refreshed.extend(batch.refreshed)
        merged.problems.extend(batch.problems)
        if store:
            view.store(batch)
    return merged


def by_name(batch: ScanBatch) -> dict[str, FileInfo]:
    return {f.name: f for f in batch.files}


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ----------------------------------------------------------------- basics


def test_new_entries_then_unchanged_rescan_yields_nothing(fs: FileSystem) -> None:
    put(fs, "a.txt", b"alpha")
    put(fs, "dir/b.txt", b"beta")
    fs.symlink("a.txt", "link")
    view = DictView()
    result = run(fs, view)
    assert [f.name for f in result.files] == ["a.txt", "dir", "dir/b.txt", "link"]
    a = by_name(result)["a.txt"]
    assert a.type == FileType.FILE and a.size == 5 and a.modified_ns == T0
    assert a.blocks == (BlockInfo(0, 5, sha(b"alpha")),)
    assert a.block_size == MIN_BLOCK_SIZE
    assert a.version == vector.make([(SID, NOW)]) and a.modified_by == SID
    assert a.sequence == 0 and a.inode == fs.lstat("a.txt").inode
    d = by_name(result)["dir"]
    assert d.type == FileType.DIRECTORY and d.blocks == () and d.size == 0
    assert result.problems == []
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW + 5)) == []


def test_walk_order_matches_index_order(fs: FileSystem) -> None:
    # '.' < '/' < '0': a naive depth-first walk would yield a/b before a.txt
    for name in ("a/b", "a/b.c/x", "a.txt", "a0", "a-b", "a/b-c", "é"):
        put(fs, name, name.encode())
    view = DictView()
    result = run(fs, view)
    got = [f.name for f in result.files]
    assert got == sorted(got)
    assert len(got) == 9  # 7 files + directories a and a/b.c, none twice
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW)) == []


def test_changed_content_gets_bumped_version(fs: FileSystem) -> None:
    put(fs, "f", b"one")
    view = DictView()
    run(fs, view, now=NOW)
    put(fs, "f", b"two", mtime_ns=T0 + 1)  # same size, new mtime
    result = run(fs, view, now=NOW)  # same second: counter still increases
    f = by_name(result)["f"]
    assert f.version == vector.make([(SID, NOW + 1)])
    assert f.blocks[0].hash == sha(b"two") and f.modified_ns == T0 + 1


def test_delete_makes_a_tombstone_and_reappearance_bumps_it(fs: FileSystem) -> None:
    put(fs, "d/f", b"content")
    view = DictView()
    run(fs, view)
    fs.remove("d/f")
    fs.rmdir("d")
    result = run(fs, view, now=NOW + 10)
    assert [f.name for f in result.files] == ["d", "d/f"]
    for tomb in result.files:
        assert tomb.deleted and tomb.size == 0 and tomb.blocks == ()
        assert tomb.version == vector.make([(SID, NOW + 10)])
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW + 20)) == []  # stays deleted
    put(fs, "d/f", b"back")
    again = by_name(run(fs, view, now=NOW + 10))
    assert not again["d/f"].deleted
    assert again["d/f"].version == vector.make([(SID, NOW + 11)])


def test_rename_is_delete_plus_new_with_same_blocks(fs: FileSystem) -> None:
    put(fs, "old.bin", os.urandom(300_000))
    view = DictView()
    old = by_name(run(fs, view))["old.bin"]
    fs.rename("old.bin", "new.bin")
    result = by_name(run(fs, view))
    assert result["old.bin"].deleted
    assert result["new.bin"].blocks == old.blocks
    assert result["new.bin"].blocks_hash() == old.blocks_hash()


def test_permission_only_change_reuses_blocks_without_rehash(fs: FileSystem) -> None:
    put(fs, "f", b"data")
    fs.chmod("f", 0o644)
    fs.set_mtime("f", T0)
    view = DictView()
    old = by_name(run(fs, view))["f"]
    fs.chmod("f", 0o755)
    counting = Counting(fs)
    result = run(counting, view)
    assert counting.opened == []
    new = by_name(result)["f"]
    assert new.permissions == 0o755 and new.blocks == old.blocks
    assert vector.compare(new.version, old.version) == vector.Ordering.GREATER
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW, ignore_permissions=True)) == []


def test_unchanged_files_are_not_reopened(fs: FileSystem) -> None:
    for i in range(20):
        put(fs, f"dir{i % 3}/f{i}", b"x" * i)
    view = DictView()
    run(fs, view)
    counting = Counting(fs)
    assert run(counting, view).files == []
    assert counting.opened == []


def test_directory_permission_change(fs: FileSystem) -> None:
    fs.mkdir("d", 0o755)
    view = DictView()
    run(fs, view)
    fs.chmod("d", 0o700)
    d = by_name(run(fs, view))["d"]
    assert d.type == FileType.DIRECTORY and d.permissions == 0o700


def test_symlink_recorded_not_followed(fs: FileSystem) -> None:
    put(fs, "real/inner.txt", b"inside")
    fs.symlink("real", "alias")
    fs.symlink("/etc", "abs")
    view = DictView()
    result = by_name(run(fs, view))
    assert set(result) == {"real", "real/inner.txt", "alias", "abs"}
    assert result["alias"].type == FileType.SYMLINK
    assert result["alias"].symlink_target == "real" and result["alias"].no_permissions
    assert result["abs"].symlink_target == "/etc" and result["abs"].blocks == ()
    fs.remove("alias")
    fs.symlink("elsewhere", "alias")
    changed = by_name(run(fs, view))
    assert list(changed) == ["alias"] and changed["alias"].symlink_target == "elsewhere"


def test_type_changes(fs: FileSystem) -> None:
    put(fs, "x", b"file")
    fs.mkdir("y")
    view = DictView()
    run(fs, view)
    fs.remove("x")
    fs.mkdir("x")
    fs.rmdir("y")
    put(fs, "y", b"now a file")
    result = by_name(run(fs, view))
    assert result["x"].type == FileType.DIRECTORY and not result["x"].deleted
    assert result["y"].type == FileType.FILE and result["y"].blocks[0].hash == sha(b"now a file")
    assert all(vector.counter(f.version, SID) == NOW + 1 for f in result.values())


def test_empty_file_has_one_empty_block(fs: FileSystem) -> None:
    put(fs, "empty", b"")
    f = by_name(run(fs, DictView()))["empty"]
    assert f.size == 0 and f.blocks == (BlockInfo(0, 0, EMPTY_BLOCK_HASH),)
    assert EMPTY_BLOCK_HASH == hashlib.sha256(b"").digest()


def test_large_file_blocks_match_hashlib(fs: FileSystem) -> None:
    data = os.urandom(3 * MIN_BLOCK_SIZE + 1000)
    put(fs, "big", data)
    f = by_name(run(fs, DictView()))["big"]
    assert f.block_size == MIN_BLOCK_SIZE and f.size == len(data)
    expected = [
        (off, len(data[off : off + MIN_BLOCK_SIZE]), sha(data[off : off + MIN_BLOCK_SIZE]))
        for off in range(0, len(data), MIN_BLOCK_SIZE)
    ]
    assert [(b.offset, b.size, b.hash) for b in f.blocks] == expected
    assert len(f.blocks) == 4 and f.blocks[-1].size == 1000


def test_block_size_stays_stable_when_file_grows(fs: FileSystem) -> None:
    data = os.urandom(1_000_000)
    put(fs, "f", data)
    view = DictView()
    first = by_name(run(fs, view))["f"]
    assert first.block_size == MIN_BLOCK_SIZE
    # pretend an older scan chose 256 KiB (within a factor two of ideal: keep it)
    view.entries["f"] = first.with_(block_size=2 * MIN_BLOCK_SIZE, modified_ns=0)
    put(fs, "f", data + b"more", mtime_ns=T0 + 5)
    grown = by_name(run(fs, view))["f"]
    assert grown.block_size == 2 * MIN_BLOCK_SIZE
    assert [b.size for b in grown.blocks] == [262144, 262144, 262144, 213572]


def test_parallel_hashing_matches_sequential(fs: FileSystem) -> None:
    for i in range(12):
        put(fs, f"f{i:02}", os.urandom(50_000 + i * 30_000))
    one = run(fs, DictView(), hash_workers=1)
    four = run(fs, DictView(), hash_workers=4, batch_size=5)
    assert one.files == four.files
    assert [f.name for f in one.files] == [f"f{i:02}" for i in range(12)]


def test_batches_are_bounded(fs: FileSystem) -> None:
    for i in range(10):
        put(fs, f"f{i}", b"%d" % i)
    batches = list(scan(fs, DictView(), short_id=SID, now=lambda: NOW, batch_size=3))
    assert [len(b.files) for b in batches] == [3, 3, 3, 1]
    names = [f.name for b in batches for f in b.files]
    assert names == sorted(names)


def test_batches_end_once_their_files_hold_batch_bytes(fs: FileSystem) -> None:
    """Peers learn of big files as they are hashed: a batch closes at ``batch_bytes``
    (an initial scan of 200 × 1 MiB otherwise announced nothing until all were hashed)."""
    for i in range(7):
        put(fs, f"f{i}", os.urandom(300_000))
    batches = list(scan(fs, DictView(), short_id=SID, now=lambda: NOW, batch_bytes=600_000))
    # 600 KB, then 1.2 MB (the bound doubles), then the rest
    assert [len(b.files) for b in batches] == [2, 4, 1]


def test_progress_counts_hashed_files_and_bytes(fs: FileSystem) -> None:
    progress = ScanProgress(started=0.0)
    for i in range(3):
        put(fs, f"f{i}", b"x" * (1000 * (i + 1)))
    put(fs, "dir/g", b"")
    list(scan(fs, DictView(), short_id=SID, now=lambda: NOW, progress=progress))
    assert (progress.files_hashed, progress.bytes_hashed) == (4, 6000)


# ----------------------------------------------------------------- changing while scanned


class GrowingFS:
    """Appends to ``target`` the first time it is read: the scan must notice."""

    def __init__(self, inner: FileSystem, target: str) -> None:
        self._inner = inner
        self._target = target
        self.grown = False

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def open_read(self, name: str) -> Any:
        handle = self._inner.open_read(name)
        if name != self._target:
            return handle
        outer = self

        class Growing:
            def __enter__(self) -> Any:
                handle.__enter__()
                return self

            def __exit__(self, *exc: object) -> None:
                handle.__exit__(None, None, None)

            def stat(self) -> Any:
                return handle.stat()

            def read_at(self, offset: int, size: int) -> bytes:
                data = handle.read_at(offset, size)
                if not outer.grown:
                    outer.grown = True
                    with outer._inner.open_write(name) as w:
                        w.write_at(w.stat().size, b"appended while hashing")
                return data

        return Growing()


def test_file_growing_during_hash_is_left_for_next_scan(fs: FileSystem) -> None:
    put(fs, "stable", b"s")
    put(fs, "log", os.urandom(200_000))
    view = DictView()
    growing = GrowingFS(fs, "log")
    result = run(growing, view)
    assert growing.grown
    assert [f.name for f in result.files] == ["stable"]
    assert [(p.name, p.reason) for p in result.problems] == [
        ("log", "changed during scan; will rescan")
    ]
    assert "log" not in view.entries
    later = by_name(run(fs, view))
    assert later["log"].size == 200_000 + len(b"appended while hashing")


def test_fake_read_hook_truncation_is_detected() -> None:
    fs = FakeFS()
    put(fs, "f", os.urandom(400_000))

    def shrink(name: str, offset: int) -> None:
        fs.read_hook = None
        with fs.open_write(name) as h:
            h.truncate(10)

    fs.read_hook = shrink
    result = run(fs, DictView())
    assert result.files == [] and result.problems[0].reason.startswith("changed during scan")


# ----------------------------------------------------------------- case and time quirks


def test_case_clash_on_case_insensitive_fs_is_reported_not_deleted() -> None:
    fs = FakeFS(case_insensitive=True)
    put(fs, "foo.txt", b"lower")
    view = DictView()
    run(fs, view)
    # A case-sensitive peer also had "Foo.txt"; the index knows both, the disk holds one.
    view.entries["Foo.txt"] = view.entries["foo.txt"].with_(name="Foo.txt")
    result = run(fs, view)
    assert result.files == []
    assert len(result.problems) == 1
    assert result.problems[0].name == "Foo.txt" and "case clash" in result.problems[0].reason
    assert not view.entries["Foo.txt"].deleted


def test_case_only_rename_on_case_insensitive_fs() -> None:
    fs = FakeFS(case_insensitive=True)
    put(fs, "Dir/Foo.txt", b"content")
    view = DictView()
    before = by_name(run(fs, view))["Dir/Foo.txt"]
    fs.rename("Dir/Foo.txt", "Dir/foo.txt")
    result = by_name(run(fs, view))
    assert set(result) == {"Dir/Foo.txt", "Dir/foo.txt"}
    assert result["Dir/Foo.txt"].deleted  # no clash: the new spelling was not indexed
    assert result["Dir/foo.txt"].blocks == before.blocks


def test_one_second_mtime_granularity() -> None:
    fs = FakeFS(mtime_granularity_ns=10**9)
    put(fs, "f", b"abc", mtime_ns=T0 + 700_000_000)  # stored as T0
    view = DictView()
    # the index remembers the peer's precise mtime that the fs could not store
    recorded = by_name(run(fs, view))["f"]
    view.entries["f"] = recorded.with_(modified_ns=T0 + 700_000_000)
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW)) == []
    put(fs, "f", b"abcd", mtime_ns=T0 + 900_000_000)  # same second, but size changed
    assert by_name(run(fs, view))["f"].size == 4


def test_real_fs_case_sensitive_sees_two_names(tmp_path: Path) -> None:
    fs = BasicFS(tmp_path)
    put(fs, "Foo", b"1")
    put(fs, "foo", b"2")
    assert [f.name for f in run(fs, DictView()).files] == ["Foo", "foo"]


# ----------------------------------------------------------------- what is not user data


def test_internal_files_are_not_scanned(fs: FileSystem) -> None:
    fs.makedirs(".p2psync")
    put(fs, ".p2pversions/a~20240101-000000.txt", b"old")
    put(fs, ".p2pignore", b"*.log\n")
    put(fs, ".p2psync.a.txt.tmp", b"partial")
    put(fs, "sub/.p2psync.b.tmp", b"partial")
    put(fs, "sub/.p2psync", b"only special at the root")
    put(fs, "sub/.p2pversions/x", b"only special at the root")
    put(fs, "sub/.p2pignore", b"only special at the root")
    view = DictView()
    names = [f.name for f in run(fs, view).files]
    assert names == [
        "sub",
        "sub/.p2pignore",
        "sub/.p2psync",
        "sub/.p2pversions",
        "sub/.p2pversions/x",
    ]
    # a subpath scan of an internal name does nothing either
    assert run(fs, view, subpaths=[".p2psync.a.txt.tmp", ".p2pversions"]).files == []


class StubIgnore:
    def __init__(self, ignored: set[str], skip: set[str]) -> None:
        self.ignored = ignored
        self.skip = skip
        self.asked: list[str] = []

    def is_ignored(self, name: str) -> bool:
        self.asked.append(name)
        return name in self.ignored or any(name.startswith(d + "/") for d in self.skip)

    def should_skip_dir(self, name: str) -> bool:
        return name in self.skip


def test_ignored_paths_are_skipped(fs: FileSystem) -> None:
    put(fs, "keep.txt", b"k")
    put(fs, "secret.txt", b"s")
    put(fs, "build/out.o", b"o")
    put(fs, "build/deep/x.o", b"x")
    ignore = StubIgnore({"secret.txt", "build"}, {"build"})
    view = DictView()
    result = run(fs, view, ignore=ignore)
    assert [f.name for f in result.files] == ["keep.txt"]
    assert not any(n.startswith("build/") for n in ignore.asked)  # never descended


def test_known_file_becoming_ignored_is_announced_invalid_not_deleted(fs: FileSystem) -> None:
    put(fs, "notes.txt", b"n")
    put(fs, "cache/a", b"a")
    view = DictView()
    run(fs, view)
    before = dict(view.entries)
    ignore = StubIgnore({"notes.txt", "cache"}, {"cache"})
    result = by_name(run(fs, view, ignore=ignore))
    assert set(result) == {"notes.txt", "cache", "cache/a"}
    for name, info in result.items():
        assert info.invalid and not info.deleted and info.local_flags & FLAG_IGNORED
        assert info.version == before[name].version  # a valid copy elsewhere still wins
    fs.remove("cache/a")  # deleting an ignored file must not produce a tombstone
    assert run(fs, view, ignore=ignore).files == []
    # un-ignored again: a new version from this device
    back = by_name(run(fs, view))
    assert not back["notes.txt"].invalid and back["notes.txt"].local_flags == 0
    assert back["notes.txt"].version != before["notes.txt"].version
    assert back["cache/a"].deleted


def test_entry_invalid_for_another_reason_is_compared_normally(fs: FileSystem) -> None:
    """E.g. a receive-only folder marks local changes invalid with its own flag: an
    unchanged file must not get a new version on every scan."""
    put(fs, "f", b"local edit")
    view = DictView()
    run(fs, view)
    view.entries["f"] = view.entries["f"].with_(invalid=True, local_flags=1)
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW)) == []
    put(fs, "f", b"edited again", mtime_ns=T0 + 1)
    again = by_name(run(fs, view))["f"]
    assert not again.invalid and again.local_flags == 0


def test_unreadable_directory_keeps_its_entries(fs: FileSystem) -> None:
    put(fs, "locked/a", b"a")
    put(fs, "open/b", b"b")
    view = DictView()
    run(fs, view)
    fs.remove("open/b")
    result = run(Counting(fs, unreadable=frozenset({"locked"})), view)
    assert [f.name for f in result.files] == ["open/b"]  # only the real deletion
    assert [(p.name, p.reason) for p in result.problems] == [
        ("locked", "cannot list directory: Permission denied")
    ]
    assert not view.entries["locked/a"].deleted


def test_missing_root_raises_instead_of_deleting_everything(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    fs = BasicFS(root)
    put(fs, "f", b"x")
    view = DictView()
    run(fs, view)
    os.remove(root / "f")
    root.rmdir()
    with pytest.raises(FilesystemError):
        run(fs, view)
    assert not view.entries["f"].deleted


# ----------------------------------------------------------------- subpaths


def test_subpaths_limit_the_scan(fs: FileSystem) -> None:
    put(fs, "a/one", b"1")
    put(fs, "b/two", b"2")
    view = DictView()
    run(fs, view)
    put(fs, "a/one", b"one!", mtime_ns=T0 + 1)
    put(fs, "b/two", b"two!", mtime_ns=T0 + 1)
    fs.remove("a/one")
    put(fs, "a/new", b"n")
    result = run(fs, view, subpaths=["a/new", "a/one"])
    assert [f.name for f in result.files] == ["a/new", "a/one"]
    assert by_name(result)["a/one"].deleted
    assert view.entries["b/two"].blocks[0].hash == sha(b"2")  # b not scanned
    assert [f.name for f in run(fs, view, subpaths=["b"]).files] == ["b/two"]


def test_subpath_under_unknown_parents_scans_from_the_first_unknown(fs: FileSystem) -> None:
    put(fs, "known/x", b"x")
    view = DictView()
    run(fs, view)
    put(fs, "known/new/deeper/f", b"f")
    result = run(fs, view, subpaths=["known/new/deeper/f"])
    assert [f.name for f in result.files] == ["known/new", "known/new/deeper", "known/new/deeper/f"]


def test_subpaths_under_one_directory_read_its_entry_once(fs: FileSystem) -> None:
    for i in range(20):
        put(fs, f"dir/sub/f{i}", b"x")
    view = DictView()
    run(fs, view)
    asked: list[str] = []
    get_local = view.get_local

    def counting_get_local(name: str) -> FileInfo | None:
        asked.append(name)
        return get_local(name)

    view.get_local = counting_get_local  # type: ignore[method-assign]
    for i in range(20):
        put(fs, f"dir/sub/f{i}", b"changed", mtime_ns=T0 + 1)
    result = run(fs, view, subpaths=[f"dir/sub/f{i}" for i in range(20)])
    assert len(result.files) == 20
    assert asked.count("dir/sub") == 1  # the roots' parent: one read, not one per path


def test_subpath_overlap_and_validation(fs: FileSystem) -> None:
    put(fs, "d/e/f", b"f")
    view = DictView()
    result = run(fs, view, subpaths=["d/e/f", "d", "d/e"])
    assert [f.name for f in result.files] == ["d", "d/e", "d/e/f"]  # each once
    with pytest.raises(UnsafePathError):
        scan(fs, view, short_id=SID, now=lambda: NOW, subpaths=["../etc"])


# ----------------------------------------------------------------- names the real fs can hold


def test_bad_names_on_disk_are_reported_and_skipped(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    (root / "good.txt").write_bytes(b"g")
    nfd = unicodedata.normalize("NFD", "café.txt")
    (root / nfd).write_bytes(b"nfd")
    fd = os.open(os.fsencode(root) + b"/bad\xff.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    os.mkdir(os.fsencode(root) + b"/dir\xfe")
    (root / "back\\slash").write_bytes(b"b")
    (root / "c:drive").write_bytes(b"c")
    result = run(BasicFS(root), DictView())
    assert [f.name for f in result.files] == ["good.txt"]
    reasons = {p.name: p.reason for p in result.problems}
    assert set(reasons) == {
        nfd,
        os.fsdecode(b"bad\xff.bin"),
        os.fsdecode(b"dir\xfe"),
        "back\\slash",
        "c:drive",
    }
    assert "not valid UTF-8" in reasons[os.fsdecode(b"bad\xff.bin")]
    assert "NFC" in reasons[nfd]
    assert "backslash" in reasons["back\\slash"]
    assert (root / nfd).read_bytes() == b"nfd"  # never renamed or touched


def test_replaced_by_identical_copy_only_refreshes_inode(fs: FileSystem) -> None:
    put(fs, "f", b"same bytes")
    view = DictView()
    old = by_name(run(fs, view))["f"]
    put(fs, ".p2psync.f.tmp", b"same bytes")
    fs.chmod(".p2psync.f.tmp", old.permissions)
    fs.rename(".p2psync.f.tmp", "f")
    fs.set_mtime("f", old.modified_ns)
    result = run(fs, view)
    assert result.files == []
    assert [r.name for r in result.refreshed] == ["f"]
    assert result.refreshed[0].version == old.version
    assert result.refreshed[0].inode == fs.lstat("f").inode != old.inode
    assert list(scan(fs, view, short_id=SID, now=lambda: NOW)) == []


def test_directory_replaced_by_symlink_is_not_followed(fs: FileSystem) -> None:
    put(fs, "a/x", b"x")
    put(fs, "elsewhere/x", b"other")
    view = DictView()
    run(fs, view)
    fs.remove("a/x")
    fs.rmdir("a")
    fs.symlink("elsewhere", "a")
    result = by_name(run(fs, view))
    assert set(result) == {"a", "a/x"}
    assert result["a"].type == FileType.SYMLINK
    assert result["a/x"].deleted
    # a watcher-triggered subpath scan through the symlink finds nothing either
    assert run(fs, view, subpaths=["a/x"]).files == []


@pytest.mark.parametrize("seed", range(8))
def test_random_changes_converge(fs: FileSystem, seed: int) -> None:
    """After any mix of changes one scan brings the index in line with the disk, and a
    second scan finds nothing: the merge-join never misses or invents an entry."""
    import random

    rng = random.Random(seed)
    parts = ["a", "a.b", "a-b", "a0", "b", "é", "Z"]
    view = DictView()
    mtime = T0
    for _round in range(6):
        for _ in range(rng.randrange(1, 12)):
            name = "/".join(rng.choice(parts) for _ in range(rng.randrange(1, 4)))
            mtime += 1
            try:
                action = rng.random()
                if action < 0.5:
                    put(fs, name, rng.randbytes(rng.randrange(0, 3000)), mtime_ns=mtime)
                elif action < 0.7:
                    fs.makedirs(name)
                elif action < 0.9:
                    st = fs.lstat(name)
                    if st.type == FileType.DIRECTORY:
                        _rmtree(fs, name)
                    else:
                        fs.remove(name)
                else:
                    fs.symlink(rng.choice(parts), name)
            except (OSError, UnsafePathError):
                pass  # e.g. a file where a directory is needed: try something else
        run(fs, view)
        assert _live(view) == _on_disk(fs, "")
        assert list(scan(fs, view, short_id=SID, now=lambda: NOW)) == []


def _rmtree(fs: FileSystem, name: str) -> None:
    for entry in fs.scandir(name):
        child = f"{name}/{entry.name}"
        if entry.stat.type == FileType.DIRECTORY:
            _rmtree(fs, child)
        else:
            fs.remove(child)
    fs.rmdir(name)


def _live(view: DictView) -> dict[str, tuple[FileType, int, str]]:
    return {n: (f.type, f.size, f.symlink_target) for n, f in view.entries.items() if not f.deleted}


def _on_disk(fs: FileSystem, dirname: str) -> dict[str, tuple[FileType, int, str]]:
    found: dict[str, tuple[FileType, int, str]] = {}
    for entry in fs.scandir(dirname):
        name = f"{dirname}/{entry.name}" if dirname else entry.name
        st = entry.stat
        assert st.type is not None
        found[name] = (st.type, st.size, st.symlink_target)
        if st.type == FileType.DIRECTORY:
            found.update(_on_disk(fs, name))
    return found


@pytest.mark.parametrize(
    ("file_size", "expected"),
    [  # Syncthing's table (reference §4.6): fewer than 2000 blocks
        (0, 128 * 1024),
        (2000 * 128 * 1024 - 1, 128 * 1024),  # just under 250 MiB
        (2000 * 128 * 1024, 256 * 1024),  # exactly 2000 blocks of 128 KiB: too many
        (300 * 1024**2, 256 * 1024),
        (2000 * 256 * 1024, 512 * 1024),  # 500 MiB
        (1024**3 - 1, 1024**2),  # 1000 MiB .. 1 GiB: 1 MiB, as Syncthing
        (1024**3, 1024**2),
        (4 * 1024**3, 4 * 1024**2),
        (64 * 1024**3, 16 * 1024**2),
        (10 * 1024**4, 16 * 1024**2),  # never past the largest legal size
    ],
)
def test_block_size_rule_is_syncthings(file_size: int, expected: int) -> None:
    assert block_size_for(file_size) == expected


def test_a_rescan_keeps_a_block_size_within_a_factor_of_two() -> None:
    assert block_size_for(1024**3, current=512 * 1024) == 512 * 1024
    assert block_size_for(1024**3, current=2 * 1024**2) == 2 * 1024**2
    assert block_size_for(1024**3, current=256 * 1024) == 1024**2
