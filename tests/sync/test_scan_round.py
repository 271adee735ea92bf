"""When a watcher scan reaches peers: at once batch by batch when it can only add, as one
change when it could delete (so a directory rename arrives as its adds and deletes together)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pull_support import FOLDER, LOCAL

from p2psync.config import FolderConfig
from p2psync.fs import BasicFS
from p2psync.fs.internal import MARKER
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.protocol.fileinfo import FileInfo
from p2psync.scanner.ignore import Ignore
from p2psync.sync.scan_round import ScanRound

BATCH = 10


class Stored:
    """What the scan round handed on to peers, one list per store."""

    def __init__(self) -> None:
        self.batches: list[list[FileInfo]] = []

    def __call__(self, files: list[FileInfo]) -> None:
        self.batches.append(files)

    def names(self) -> list[str]:
        return [fi.name for batch in self.batches for fi in batch]


async def run_round(
    fs: BasicFS, index: IndexStore, paths: list[str] | None, *, marker: bool = True
) -> Stored:
    """One round; the folder marker is made first (as the runner's check does) unless
    ``marker`` is False."""

    async def db(fn: Any, *args: Any) -> Any:
        return fn(*args)

    if marker and not (Path(fs.root) / MARKER).exists():
        fs.mkdir(MARKER)

    stored = Stored()
    await ScanRound(
        folder_id=FOLDER,
        config=FolderConfig(id=FOLDER, path=fs.root),
        fs=fs,
        index=index,
        local=DeviceID(LOCAL),
        ignore=Ignore(),
        hash_workers=1,
        db=db,
        on_stored=stored,
        batch_size=BATCH,
    ).run(paths)
    return stored


def make_tree(root: Path, name: str, files: int) -> None:
    (root / name).mkdir()
    for i in range(files):
        (root / name / f"f{i:03d}").write_bytes(os.urandom(100))


async def test_a_tree_moved_in_is_stored_batch_by_batch(fs: BasicFS, tmp_path: Path) -> None:
    root = Path(fs.root)
    make_tree(root, "old", 3)
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        await run_round(fs, index, None)
        make_tree(root, "new", 35)  # 36 entries with the directory

        stored = await run_round(fs, index, ["new"])

        assert len(stored.batches) == 4
        assert all(len(batch) <= BATCH for batch in stored.batches)
        assert sorted(stored.names()) == ["new", *(f"new/f{i:03d}" for i in range(35))]


async def test_a_scan_that_could_delete_is_stored_as_one_change(
    fs: BasicFS, tmp_path: Path
) -> None:
    root = Path(fs.root)
    make_tree(root, "dir1", 35)
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        await run_round(fs, index, None)
        os.rename(root / "dir1", root / "dir2")

        stored = await run_round(fs, index, ["dir1", "dir2"])

        (batch,) = stored.batches
        assert len(batch) == 72  # 36 new names, then 36 deletions
        assert all(not fi.deleted for fi in batch[:36])
        assert all(fi.deleted for fi in batch[36:])
        assert {fi.name.split("/")[0] for fi in batch[36:]} == {"dir1"}


async def test_a_deleted_tree_does_not_hold_a_later_scan_of_its_name(
    fs: BasicFS, tmp_path: Path
) -> None:
    """Deletions already recorded cannot be deleted again: a tree put back under the
    same name is streamed like any new one."""
    root = Path(fs.root)
    make_tree(root, "t", 3)
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        await run_round(fs, index, None)
        for child in (root / "t").iterdir():
            child.unlink()
        (root / "t").rmdir()
        await run_round(fs, index, ["t"])
        assert not index.has_live_local(FOLDER, ["t"])

        make_tree(root, "t", 25)
        stored = await run_round(fs, index, ["t"])

        assert len(stored.batches) == 3


def test_has_live_local_looks_only_under_the_given_paths(fs: BasicFS, tmp_path: Path) -> None:
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        assert not index.has_live_local(FOLDER, [""])
        index.update_local(FOLDER, [FileInfo(name="a/b", size=0, modified_ns=1, version=())])
        assert index.has_live_local(FOLDER, ["a"])
        assert index.has_live_local(FOLDER, ["a/b"])
        assert index.has_live_local(FOLDER, [""])
        assert index.has_live_local(FOLDER, ["x", "a"])
        assert not index.has_live_local(FOLDER, ["a/bc", "ab", "x"])


async def test_deletions_found_after_the_marker_went_are_withheld(
    fs: BasicFS, tmp_path: Path
) -> None:
    """The runner checks the marker before a round; one removed during the walk (a disk
    unmounted, a folder being emptied) must not turn what the walk missed into deletions
    on every peer."""
    root = Path(fs.root)
    make_tree(root, "docs", 6)
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        await run_round(fs, index, None)
        (root / MARKER).rmdir()
        for i in range(3):
            (root / "docs" / f"f{i:03d}").unlink()
        (root / "docs" / "new").write_bytes(b"new")

        stored = await run_round(fs, index, None, marker=False)

        assert stored.names() == ["docs/new"]  # the addition, no deletion
        live = [fi.name for fi in index.iter_local(FOLDER) if not fi.deleted]
        assert all(f"docs/f{i:03d}" in live for i in range(3))

        fs.mkdir(MARKER)  # back: the same scan now records them
        stored = await run_round(fs, index, None)
        assert sorted(stored.names()) == [f"docs/f{i:03d}" for i in range(3)]
