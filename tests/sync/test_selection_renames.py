"""followed_selection (sync/selection_renames.py) on a real index: a peer's rename of a
selected directory, seen in the needed changes, moves the selection; anything less
(another directory deleted, a partial match, two candidates) leaves it alone."""

from __future__ import annotations

from pull_support import FOLDER, REMOTE_SHORT, remote_file

from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType
from p2psync.scanner.scan import NOT_SELECTED
from p2psync.sync.selection_renames import followed_selection

PEER = bytes(range(1, 33))


def _dir(name: str) -> FileInfo:
    return FileInfo(name=name, type=FileType.DIRECTORY, permissions=0o755,
                    version=vector.make([(REMOTE_SHORT, 1)]))  # fmt: skip


def _gone(fi: FileInfo) -> FileInfo:
    return fi.with_(
        deleted=True, size=0, blocks=(), version=vector.update(fi.version, REMOTE_SHORT, 2)
    )


def _held(index: IndexStore, entries: list[FileInfo]) -> None:
    index.update_remote(FOLDER, PEER, entries)
    index.update_local(FOLDER, entries)


def _tree(root: str, files: dict[str, bytes]) -> list[FileInfo]:
    return [_dir(root)] + [remote_file(f"{root}/{n}", d) for n, d in files.items()]


FILES = {"a.txt": b"a", "b.txt": b"bb"}


def test_a_selected_directory_renamed_by_a_peer_moves_the_selection(index: IndexStore) -> None:
    before = _tree("docs", FILES)
    _held(index, before)
    after = _tree("documents", FILES)
    index.update_remote(FOLDER, PEER, [_gone(f) for f in before] + after)
    # the new names are left out here until the selection follows
    index.update_local(
        FOLDER, [f.with_(invalid=True).as_local(local_flags=NOT_SELECTED) for f in after]
    )
    assert followed_selection(index, FOLDER, ("docs", "music")) == ("documents", "music")


def test_no_rename_without_one_matching_new_directory(index: IndexStore) -> None:
    before = _tree("docs", FILES)
    _held(index, before)
    partial = _tree("documents", {"a.txt": b"a"})  # b.txt did not come along
    index.update_remote(FOLDER, PEER, [_gone(f) for f in before] + partial)
    assert followed_selection(index, FOLDER, ("docs",)) == ("docs",)
    twins = _tree("copy-1", FILES) + _tree("copy-2", FILES)  # two candidates: ambiguous
    index.update_remote(FOLDER, PEER, twins)
    assert followed_selection(index, FOLDER, ("docs",)) == ("docs",)


def test_nothing_needed_under_the_selection_changes_nothing(index: IndexStore) -> None:
    _held(index, _tree("docs", FILES) + _tree("music", FILES))
    index.update_remote(FOLDER, PEER, [_gone(f) for f in _tree("music", FILES)])
    assert followed_selection(index, FOLDER, ("docs",)) == ("docs",)
