"""Stale temp files: the full scan's walk lists the puller's temp files it passes, and the
cleaner removes the old ones from that list instead of walking the folder a second time
(a second walk of a million entries held the folder's next change back by seconds)."""

from __future__ import annotations

import trio

from p2psync.fs import FakeFS
from p2psync.fs.internal import temp_name
from p2psync.index import Counts
from p2psync.scanner.walker import TempsSeen, Walker
from p2psync.sync.folder_housekeeping import clean_stale_temps
from p2psync.sync.full_disk import remove_listed_temps

DAY_NS = 86400 * 10**9


def _put(fs: FakeFS, name: str, mtime_ns: int) -> None:
    with fs.open_write(name) as handle:
        handle.write_at(0, b"partial")
    fs.set_mtime(name, mtime_ns)


class CountingFS(FakeFS):
    """Counts directory listings: the cleaner with a complete list makes none."""

    listings = 0

    def scandir(self, dirname: str):  # type: ignore[no-untyped-def]
        self.listings += 1
        return super().scandir(dirname)


def test_the_walk_lists_only_the_pullers_own_temp_files() -> None:
    fs = FakeFS()
    fs.makedirs("a/b")
    _put(fs, "a/b/data.txt", 5)
    _put(fs, temp_name("a/b/x.bin"), 7)
    _put(fs, temp_name("top.bin"), 9)
    _put(fs, "a/.P2PSYNC.users.TMP", 11)  # a user's file that folds to our name: not ours
    fs.makedirs(temp_name("a/odd"))  # a directory with a temp name: not a temp file
    seen = TempsSeen()

    names = [item.name for item in Walker(fs, None, [], seen).walk()]

    assert names == ["a", "a/b", "a/b/data.txt"]
    assert sorted(seen.names) == sorted([(temp_name("a/b/x.bin"), 7), (temp_name("top.bin"), 9)])
    assert seen.complete


def test_past_its_cap_the_list_says_it_is_incomplete() -> None:
    fs = FakeFS()
    for i in range(5):
        _put(fs, temp_name(f"f{i}"), 1)
    seen = TempsSeen(cap=3)
    list(Walker(fs, None, [], seen).walk())
    assert len(seen.names) == 3 and not seen.complete


def test_listed_temps_are_removed_only_while_still_old_temp_files() -> None:
    fs = CountingFS()
    fs.makedirs("d")
    old, renewed, gone = temp_name("d/old"), temp_name("d/renewed"), temp_name("d/gone")
    _put(fs, old, 1)
    _put(fs, renewed, 1)
    fs.set_mtime(renewed, 3 * DAY_NS)  # written again since the scan: reused, keep it
    _put(fs, "d/user.txt", 1)

    removed = remove_listed_temps(fs, [old, renewed, gone, "d/user.txt"], older_than_ns=DAY_NS)

    assert removed == 1
    assert fs.listings == 0  # no walk
    assert sorted(e.name for e in fs.scandir("d")) == sorted(
        [renewed.rpartition("/")[2], "user.txt"]
    )


class _NothingNeeded:
    def need_counts(self, folder: str) -> Counts:
        return Counts()


async def _db(fn, *args):  # type: ignore[no-untyped-def]
    return fn(*args)


async def test_the_cleaner_walks_the_folder_only_without_a_complete_list() -> None:
    for seen, walks in ((TempsSeen(), False), (TempsSeen(complete=False), True), (None, True)):
        fs = CountingFS()
        fs.makedirs("d")
        old = temp_name("d/old")
        _put(fs, old, 1)
        if seen is not None and seen.complete:
            seen.add(old, 1)
        cleaned = await clean_stale_temps(
            "f", index=_NothingNeeded(), fs=fs, db=_db,  # type: ignore[arg-type]
            io_limiter=trio.CapacityLimiter(1), max_age_ns=DAY_NS, seen=seen,
        )  # fmt: skip
        assert cleaned
        assert (fs.listings > 0) == walks
        assert fs.scandir("d") == []  # removed either way
