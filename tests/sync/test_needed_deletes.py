"""Needed deletions before a pull (sync/needed_deletes.py) on a real index: what counts
as a real deletion for the mass-delete guard, and what can be a local rename's source."""

from __future__ import annotations

from pull_support import FOLDER, REMOTE_SHORT, remote_file

from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo
from p2psync.scanner.scan import FLAG_IGNORED, NOT_SELECTED
from p2psync.sync.needed_deletes import collect_rename_sources, count_real_deletes

PEER = bytes(range(1, 33))


def _deleted_by_peer(fi: FileInfo) -> FileInfo:
    return fi.with_(
        deleted=True, size=0, blocks=(), version=vector.update(fi.version, REMOTE_SHORT, 2)
    )


def test_only_files_held_here_count_as_real_deletions(index: IndexStore) -> None:
    """A peer deletes five files: two this device holds, one it ignores and two that
    selective sync leaves out here. Only the two held ones would be deleted here, so a
    selective device is not held by the mass-delete guard for files it never had."""
    names = ["held-1", "held-2", "ignored", "left-out-1", "left-out-2"]
    files = {n: remote_file(n, n.encode() * 10) for n in names}
    index.update_remote(FOLDER, PEER, list(files.values()))
    index.update_local(FOLDER, [files["held-1"], files["held-2"]])
    index.update_local(
        FOLDER,
        [files["ignored"].with_(invalid=True).as_local(local_flags=FLAG_IGNORED)]
        + [files[n].with_(invalid=True).as_local(local_flags=NOT_SELECTED) for n in names[3:]],
    )
    index.update_remote(FOLDER, PEER, [_deleted_by_peer(f) for f in files.values()])
    assert count_real_deletes(index, FOLDER) == 2
    sources = collect_rename_sources(index, FOLDER, 100)
    assert sorted(fi.name for group in sources.values() for fi in group) == ["held-1", "held-2"]
