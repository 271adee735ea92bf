"""Two devices: every kind of local change on one arrives intact on the other.

Each test changes folder "a", asks it to scan, and waits (with a deadline) until "b"
shows the change and both trees are identical. Byte and block counters of b's puller
prove that renames and copies reuse local data instead of the network.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from nodes import Cluster, running_cluster, tree_digest, wait_for

from p2psync.fs.internal import temp_name

MiB = 1024 * 1024


@asynccontextmanager
async def pair(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path, ["a", "b"]) as c:
        await wait_for(lambda: c.connected("a", "b") and c.connected("b", "a"), what="connection")
        yield c


async def sync_a(
    c: Cluster, arrived: Callable[[], object], what: str, deadline: float = 20.0
) -> None:
    """Scan a, then wait until b shows the change and the trees are identical."""
    c.scan("a")
    await wait_for(lambda: _safe(arrived) and c.in_sync(), timeout=deadline, what=what)


def _safe(check: Callable[[], object]) -> object:
    """A check may race a rename on the receiver; a vanished path just means "not yet"."""
    try:
        return check()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read_at(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def network_blocks(c: Cluster, name: str = "b") -> int:
    return c.runner(name).puller.stats.blocks_network


async def test_modify_append_truncate_delete(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "f.txt").write_bytes(b"first version\n" * 1000)
        await sync_a(c, lambda: (b / "f.txt").exists(), "create")

        (a / "f.txt").write_bytes(b"second, same size\n" * 1000)
        await sync_a(c, lambda: (b / "f.txt").read_bytes().startswith(b"second"), "modify")

        append(a / "f.txt", os.urandom(300_000))
        size = (a / "f.txt").stat().st_size
        await sync_a(c, lambda: (b / "f.txt").stat().st_size == size, "append")

        os.truncate(a / "f.txt", 1234)
        await sync_a(c, lambda: (b / "f.txt").stat().st_size == 1234, "truncate")
        assert (b / "f.txt").read_bytes() == (a / "f.txt").read_bytes()

        (a / "f.txt").unlink()
        await sync_a(c, lambda: not (b / "f.txt").exists(), "delete")
        assert tree_digest(b) == {}


async def test_move_across_directories_costs_no_data(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "src" / "deep").mkdir(parents=True)
        (a / "dst").mkdir()
        payload = os.urandom(700_000)
        (a / "src" / "deep" / "m.bin").write_bytes(payload)
        await sync_a(c, lambda: (b / "src" / "deep" / "m.bin").exists(), "initial")
        before = network_blocks(c)

        os.rename(a / "src" / "deep" / "m.bin", a / "dst" / "m.bin")
        await sync_a(
            c,
            lambda: (b / "dst" / "m.bin").exists() and not (b / "src" / "deep" / "m.bin").exists(),
            "move across directories",
        )
        assert (b / "dst" / "m.bin").read_bytes() == payload
        assert network_blocks(c) == before, "a move must reuse the local blocks"


async def test_rename_directory_of_1000_files_transfers_no_blocks(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "old").mkdir()
        for i in range(1000):
            (a / "old" / f"f{i:04}.txt").write_text(f"small file number {i}\n" * 3)
        await sync_a(c, lambda: len(list((b / "old").iterdir())) == 1000, "1000 files", deadline=60)
        before = network_blocks(c)
        assert before >= 1000

        os.rename(a / "old", a / "new")
        await sync_a(
            c,
            lambda: (
                (b / "new").is_dir()
                and len(list((b / "new").iterdir())) == 1000
                and not (b / "old").exists()
            ),
            "directory rename",
            deadline=60,
        )
        assert network_blocks(c) == before, "renaming a directory must not fetch any block"
        assert (b / "new" / "f0999.txt").read_text() == "small file number 999\n" * 3


async def test_copy_of_existing_file_transfers_no_blocks(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        payload = os.urandom(1_500_000)
        (a / "orig.bin").write_bytes(payload)
        await sync_a(c, lambda: (b / "orig.bin").exists(), "initial")
        before = network_blocks(c)
        (a / "sub").mkdir()
        (a / "sub" / "copy.bin").write_bytes(payload)
        await sync_a(c, lambda: (b / "sub" / "copy.bin").exists(), "copy")
        assert (b / "sub" / "copy.bin").read_bytes() == payload
        assert network_blocks(c) == before


async def test_file_to_directory_and_file_to_symlink_and_back(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "x").write_text("a file first")
        (a / "y").write_text("y is a file")
        await sync_a(c, lambda: (b / "x").is_file() and (b / "y").is_file(), "files")

        (a / "x").unlink()
        (a / "x").mkdir()
        (a / "x" / "inside.txt").write_text("inside")
        (a / "y").unlink()
        os.symlink("some/target", a / "y")
        await sync_a(
            c,
            lambda: (b / "x" / "inside.txt").is_file() and (b / "y").is_symlink(),
            "file -> directory, file -> symlink",
        )
        assert os.readlink(b / "y") == "some/target"

        (a / "y").unlink()
        (a / "y").write_text("file after symlink")
        await sync_a(
            c, lambda: not (b / "y").is_symlink() and (b / "y").is_file(), "symlink -> file"
        )
        assert (b / "y").read_text() == "file after symlink"


async def test_directory_to_file_and_directory_to_symlink(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        for d in ("x", "z"):
            (a / d).mkdir()
            (a / d / "inside.txt").write_text("inside")
        await sync_a(
            c,
            lambda: (b / "x" / "inside.txt").is_file() and (b / "z" / "inside.txt").is_file(),
            "directories",
        )
        (a / "x" / "inside.txt").unlink()
        (a / "x").rmdir()
        (a / "x").write_text("a file now")
        (a / "z" / "inside.txt").unlink()
        (a / "z").rmdir()
        os.symlink("elsewhere", a / "z")
        await sync_a(
            c,
            lambda: (b / "x").is_file() and (b / "z").is_symlink(),
            "directory -> file, directory -> symlink",
            deadline=8,
        )
        assert (b / "x").read_text() == "a file now"


async def test_permission_only_change_and_mtime(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        f = a / "p.txt"
        f.write_text("permissions")
        os.chmod(f, 0o644)
        mtime_ns = 1_600_000_000_123_456_789
        os.utime(f, ns=(mtime_ns, mtime_ns))
        await sync_a(c, lambda: (b / "p.txt").exists(), "initial")
        assert (b / "p.txt").stat().st_mtime_ns == mtime_ns, "mtime must be preserved"
        assert stat.S_IMODE((b / "p.txt").stat().st_mode) == 0o644
        before = network_blocks(c)

        os.chmod(f, 0o600)
        await sync_a(c, lambda: stat.S_IMODE((b / "p.txt").stat().st_mode) == 0o600, "chmod")
        assert network_blocks(c) == before, "a permission change moves no data"
        assert (b / "p.txt").stat().st_mtime_ns == mtime_ns


async def test_empty_and_nested_directories(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "empty").mkdir()
        (a / "n1" / "n2" / "n3").mkdir(parents=True)
        await sync_a(
            c, lambda: (b / "empty").is_dir() and (b / "n1" / "n2" / "n3").is_dir(), "mkdir"
        )

        (a / "empty").rmdir()
        (a / "n1" / "n2" / "n3").rmdir()
        (a / "n1" / "n2").rmdir()
        (a / "n1").rmdir()
        await sync_a(c, lambda: not (b / "empty").exists() and not (b / "n1").exists(), "rmdir")
        assert tree_digest(b) == {}


async def test_a_deleted_directory_goes_with_what_may_go_with_it(tmp_path: Path) -> None:
    """A pull that failed in a directory (a full disk) leaves its partial temp file for
    resuming, and a user's ``(?d)`` pattern says an ignored file may be deleted: when the
    directory is deleted elsewhere, neither keeps it alive (a chaos run never converged on
    the first). A user's file there that is neither still does, with an item error."""
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        dirs = ("temp_only", "deletable", "kept")
        for d in dirs:
            (a / d / "sub").mkdir(parents=True)
            (a / d / "f").write_bytes(d.encode())
        await sync_a(c, lambda: all((b / d / "f").exists() for d in dirs), "dirs")
        (b / ".p2pignore").write_text("(?d).DS_Store\n(?d)thumbs\n")
        (b / temp_name("temp_only/partial")).write_bytes(b"half a file")
        (b / "deletable" / ".DS_Store").write_bytes(b"finder state")
        (b / "deletable" / "sub" / "thumbs").mkdir()
        (b / "deletable" / "sub" / "thumbs" / "1.png").write_bytes(b"png")
        users = b / "kept" / ".P2PSYNC.mine.TMP"  # folds to our spelling: never synced
        users.write_bytes(b"mine")

        for d in dirs:
            shutil.rmtree(a / d)
        c.scan("a")
        await wait_for(
            lambda: (
                not (b / "temp_only").exists()
                and not (b / "deletable").exists()
                and "kept" in c.runner("b").status.item_errors
            ),
            what="temp_only and deletable deleted, kept refused",
        )
        assert "not empty" in c.runner("b").status.item_errors["kept"]
        assert users.read_bytes() == b"mine"
        assert sorted(p.name for p in (b / "kept").iterdir()) == [users.name]


async def test_empty_file(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "zero").write_bytes(b"")
        (a / "d").mkdir()
        (a / "d" / "zero2.txt").write_bytes(b"")
        await sync_a(
            c, lambda: (b / "zero").is_file() and (b / "d" / "zero2.txt").is_file(), "empty files"
        )
        assert (b / "zero").stat().st_size == 0
        # and an empty file gaining content, then emptied again
        (a / "zero").write_text("now with content")
        await sync_a(c, lambda: (b / "zero").read_text() == "now with content", "grow")
        (a / "zero").write_bytes(b"")
        await sync_a(c, lambda: (b / "zero").stat().st_size == 0, "shrink to empty")


async def test_case_only_rename(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        (a / "a.txt").write_text("case matters")
        await sync_a(c, lambda: (b / "a.txt").exists(), "initial")
        before = network_blocks(c)
        os.rename(a / "a.txt", a / "A.txt")
        await sync_a(c, lambda: set(tree_digest(b)) == {"A.txt"}, "case-only rename")
        assert (b / "A.txt").read_text() == "case matters"
        assert network_blocks(c) == before


async def test_64mib_file_with_1mib_changed_sends_only_changed_blocks(tmp_path: Path) -> None:
    async with pair(tmp_path) as c:
        a, b = c.data("a"), c.data("b")
        big = a / "big.bin"
        write_random(big, 64 * MiB)
        await sync_a(
            c, lambda: (b / "big.bin").stat().st_size == 64 * MiB, "64 MiB initial", deadline=60
        )
        stats = c.runner("b").puller.stats
        before_bytes = stats.bytes_network
        assert before_bytes >= 64 * MiB

        new_middle = os.urandom(MiB)
        offset = 32 * MiB + 12345  # deliberately not block-aligned
        overwrite(big, offset, new_middle)
        await sync_a(c, lambda: stats.bytes_network > before_bytes, "1 MiB change", deadline=30)
        assert read_at(b / "big.bin", offset, MiB) == new_middle
        moved = stats.bytes_network - before_bytes
        assert moved <= 1.5 * MiB, f"{moved} bytes crossed the wire for a 1 MiB change"
