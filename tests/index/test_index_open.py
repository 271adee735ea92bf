"""Opening the index: pragmas, unusable files, schema versions and migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from index_helpers import LOCAL, make_file

from p2psync.errors import IndexError_
from p2psync.index import IndexStore
from p2psync.index.schema import MIGRATIONS, migrate, schema_version


def test_new_database_uses_wal_and_current_schema(tmp_path: Path) -> None:
    with IndexStore.open(tmp_path / "i.db", LOCAL) as s:
        s.update_local("f", [make_file("a")])
        conn = sqlite3.connect(tmp_path / "i.db")
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert schema_version(conn) == len(MIGRATIONS)
        finally:
            conn.close()


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(IndexError_, match="not a valid p2psync index"):
        IndexStore.open(path, LOCAL)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(IndexError_, match="another application"):
        IndexStore.open(path, LOCAL)


def test_too_new_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    IndexStore.open(path, LOCAL).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(IndexError_, match="newer than this p2psync supports"):
        IndexStore.open(path, LOCAL)


def test_bad_local_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IndexError_):
        IndexStore.open(tmp_path / "i.db", b"short")


def _add_note_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE folders ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated'")


def test_older_schema_is_migrated_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with IndexStore.open(path, LOCAL) as s:  # the "old" version: the shipped migrations
        s.update_local("f", [make_file("a")])
    newer = [*MIGRATIONS, _add_note_column]
    with IndexStore.open(path, LOCAL, migrations=newer) as s:
        assert s.get_local("f", "a") is not None
        s.update_local("f", [make_file("b")])
    conn = sqlite3.connect(path)
    try:
        assert schema_version(conn) == len(newer)
        assert conn.execute("SELECT name, note FROM folders").fetchall() == [("f", "migrated")]
    finally:
        conn.close()
    # The migrated file is now too new for the shipped migrations.
    with pytest.raises(IndexError_, match="newer"):
        IndexStore.open(path, LOCAL)


def test_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with IndexStore.open(path, LOCAL) as s:
        s.update_local("f", [make_file("a")])

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    failing = f"upgrading the index schema to version {len(MIGRATIONS) + 1} failed"
    with pytest.raises(IndexError_, match=failing):
        IndexStore.open(path, LOCAL, migrations=[*MIGRATIONS, broken])
    conn = sqlite3.connect(path)
    try:
        assert schema_version(conn) == len(MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables
    finally:
        conn.close()
    with IndexStore.open(path, LOCAL) as s:
        assert s.get_local("f", "a") is not None


def test_migrate_steps_one_version_at_a_time(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "i.db", isolation_level=None)
    try:
        seen = []
        steps = [lambda c, i=i: seen.append((i, schema_version(c))) for i in range(3)]
        migrate(conn, steps[:1])
        migrate(conn, steps)
        assert seen == [(0, 0), (1, 1), (2, 2)]
        assert schema_version(conn) == 3
    finally:
        conn.close()


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    s = IndexStore.open(tmp_path / "i.db", LOCAL)
    s.close()
    s.close()  # idempotent
    with pytest.raises(IndexError_, match="closed"):
        s.update_local("f", [make_file("a")])
    with pytest.raises(IndexError_, match="closed"):
        s.get_local("f", "a")


def test_a_version_1_index_gains_the_applying_table(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with IndexStore.open(path, LOCAL, migrations=MIGRATIONS[:1]) as s:
        s.update_local("f", [make_file("a")])
    with IndexStore.open(path, LOCAL) as s:
        assert s.get_local("f", "a") is not None
        s.note_applying("f", [make_file("b")])
        assert [f.name for f in s.applying("f")] == ["b"]
