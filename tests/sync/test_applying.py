"""A daemon killed after the puller renamed files into place but before it recorded them
(IndexStore.note_applying / Puller.adopt_applied): at the next start each such file is
recorded as pulled, not taken for a local edit that would later become a conflict."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from pull_support import (
    FOLDER,
    LOCAL,
    LOCAL_SHORT,
    make_puller,
    payloads,
    pull_small_files,
    remote_file,
    source_for,
)

from p2psync.fs import BasicFS
from p2psync.index import IndexStore
from p2psync.protocol.fileinfo import FileInfo
from p2psync.scanner.scan import scan
from p2psync.sync.scan_round import IndexView


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def local_changes(fs: BasicFS, index: IndexStore) -> list[FileInfo]:
    """Files the scanner would report as changed here (directories the test's puller
    created are not in its index, so they are left out)."""
    batches = scan(fs, IndexView(index, FOLDER), short_id=LOCAL_SHORT, now=lambda: int(time.time()))
    return [fi for batch in batches for fi in batch.files if not fi.is_directory]


async def kill_before_the_records(fs: BasicFS, path: Path, files: dict[str, bytes]) -> None:
    """Pull ``files`` as one batch and 'die' in the step that records them."""
    with IndexStore.open(path, LOCAL) as index:
        puller = make_puller(fs, index, source_for(files))

        def killed(records: object) -> int:
            raise Killed

        puller.recorder.store_applied = killed  # type: ignore[method-assign]
        with pytest.raises(Killed):
            await pull_small_files(puller, [remote_file(n, d) for n, d in files.items()])
        assert len(index.applying(FOLDER)) == len(files)
        assert all(index.get_local(FOLDER, name) is None for name in files)


async def test_files_renamed_in_before_a_kill_are_adopted_at_the_next_start(
    fs: BasicFS, tmp_path: Path
) -> None:
    files = payloads(5)
    db = tmp_path / "restart.db"
    await kill_before_the_records(fs, db, files)
    for name, data in files.items():  # the renames happened
        assert (Path(fs.root) / name).read_bytes() == data

    with IndexStore.open(db, LOCAL) as index:
        assert make_puller(fs, index).adopt_applied() == len(files)
        for name in files:
            stored = index.get_local(FOLDER, name)
            assert stored is not None and stored.version == remote_file(name, b"").version
        assert index.applying(FOLDER) == []
        assert local_changes(fs, index) == []  # nothing looks locally edited


async def test_a_file_edited_after_the_kill_is_not_adopted(fs: BasicFS, tmp_path: Path) -> None:
    files = payloads(3)
    db = tmp_path / "restart.db"
    await kill_before_the_records(fs, db, files)
    edited, removed, kept = sorted(files)
    (Path(fs.root) / edited).write_bytes(b"the user's newer content")
    os.remove(Path(fs.root) / removed)

    with IndexStore.open(db, LOCAL) as index:
        assert make_puller(fs, index).adopt_applied() == 1
        assert index.get_local(FOLDER, kept) is not None
        assert index.get_local(FOLDER, edited) is None  # the scan will see it as new, local
        assert index.get_local(FOLDER, removed) is None
        assert index.applying(FOLDER) == []
        assert {fi.name for fi in local_changes(fs, index)} >= {edited}


async def test_a_large_file_is_noted_before_its_rename(fs: BasicFS, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    db = tmp_path / "restart.db"
    with IndexStore.open(db, LOCAL) as index:
        source = source_for({})
        fi = remote_file("big.bin", data)
        source.blocks = {b.hash: data[b.offset : b.offset + b.size] for b in fi.blocks}
        puller = make_puller(fs, index, source)
        await puller.pull_item(fi)  # records are deferred: 'killed' before the flush
        assert [f.name for f in index.applying(FOLDER)] == ["big.bin"]
    with IndexStore.open(db, LOCAL) as index:
        assert make_puller(fs, index).adopt_applied() == 1
        assert local_changes(fs, index) == []


async def test_recording_a_batch_forgets_its_notes(fs: BasicFS, index: IndexStore) -> None:
    files = payloads(4)
    result = await pull_small_files(
        make_puller(fs, index, source_for(files)),
        [remote_file(n, d) for n, d in files.items()],
    )
    assert len(result.done) == len(files)
    assert index.applying(FOLDER) == []


async def test_a_local_rename_killed_before_its_records_is_adopted(
    fs: BasicFS, tmp_path: Path
) -> None:
    db = tmp_path / "restart.db"
    data = os.urandom(5000)
    (Path(fs.root) / "old.txt").write_bytes(data)
    with IndexStore.open(db, LOCAL) as index:
        index.update_local(FOLDER, local_changes(fs, index))
        old = index.get_local(FOLDER, "old.txt")
        assert old is not None
        moved = remote_file("new.txt", data)
        gone = old.with_(deleted=True, blocks=(), size=0, version=moved.version)
        puller = make_puller(fs, index)
        assert puller.renames.apply([(moved, gone)]) == [True]  # 'killed': never flushed
        assert {f.name for f in index.applying(FOLDER)} == {"new.txt", "old.txt"}
    assert (Path(fs.root) / "new.txt").read_bytes() == data

    with IndexStore.open(db, LOCAL) as index:
        assert make_puller(fs, index).adopt_applied() == 2
        renamed, source = index.get_local(FOLDER, "new.txt"), index.get_local(FOLDER, "old.txt")
        assert renamed is not None and not renamed.deleted
        assert source is not None and source.deleted
        assert local_changes(fs, index) == []


async def test_a_rename_whose_target_appeared_is_not_applied(fs: BasicFS, tmp_path: Path) -> None:
    data = os.urandom(5000)
    (Path(fs.root) / "old.txt").write_bytes(data)
    (Path(fs.root) / "new.txt").write_bytes(b"the user's own file")
    with IndexStore.open(tmp_path / "i.db", LOCAL) as index:
        index.update_local(FOLDER, [fi for fi in local_changes(fs, index) if fi.name == "old.txt"])
        old = index.get_local(FOLDER, "old.txt")
        assert old is not None
        moved = remote_file("new.txt", data)
        gone = old.with_(deleted=True, blocks=(), size=0)
        assert make_puller(fs, index).renames.apply([(moved, gone)]) == [False]
    assert (Path(fs.root) / "new.txt").read_bytes() == b"the user's own file"
    assert (Path(fs.root) / "old.txt").read_bytes() == data


class RenameChecksNotes(BasicFS):
    """Fails any rename into a name whose record is not yet committed as 'applying' (read
    through another connection, so only committed rows count). The index writer is held
    busy until the batch's files are flushed, so a rename that did not wait for its notes'
    commit would come first."""

    def __init__(self, root: str, index: IndexStore) -> None:
        super().__init__(root)
        self.index = index
        self.renamed: list[str] = []
        self.flushed = threading.Event()
        index._writer.submit(self._busy_writer)

    def _busy_writer(self, conn: sqlite3.Connection) -> None:
        """Holds the writer until the batch is flushed, then keeps it a while longer
        (SQLite counting, not a sleep) before the notes' transaction can start."""
        self.flushed.wait(30)
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)"
            " SELECT count(*) FROM n"
        ).fetchone()

    def fsync_files(self, handles):  # type: ignore[no-untyped-def]
        errors = super().fsync_files(handles)
        self.flushed.set()
        return errors

    def rename(self, src: str, dst: str) -> None:
        noted = {fi.name for fi in self.index.applying(FOLDER)}
        assert dst in noted, f"{dst} renamed in before its note was committed"
        super().rename(src, dst)
        self.renamed.append(dst)

    def rename_new(self, src: str, dst: str) -> None:
        noted = {fi.name for fi in self.index.applying(FOLDER)}
        assert dst in noted, f"{dst} renamed in before its note was committed"
        super().rename_new(src, dst)
        self.renamed.append(dst)


async def test_every_file_of_a_batch_is_noted_before_its_rename(
    fs: BasicFS, index: IndexStore
) -> None:
    files = payloads(12)
    checking = RenameChecksNotes(fs.root, index)
    result = await pull_small_files(
        make_puller(checking, index, source_for(files)),
        [remote_file(n, d) for n, d in files.items()],
    )
    assert len(result.done) == len(files) and result.skipped == []
    assert sorted(checking.renamed) == sorted(files)
