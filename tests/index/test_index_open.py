"""Opening the index: pragmas, unusable files, schema versions and migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from index_helpers import DEV_A, LOCAL, assert_counts_exact, make_deleted, make_file

from p2psync.errors import IndexError_
from p2psync.index import IndexStore
from p2psync.index.sqlite_schema import (
    MIGRATIONS,
    migrate,
    open_database,
    schema_version,
    without_insert_counts,
)


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


def _triggers(conn: sqlite3.Connection, master: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT name FROM {master} WHERE type = 'trigger'")}


def test_a_version_2_index_moves_its_count_triggers_to_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with IndexStore.open(path, LOCAL, migrations=MIGRATIONS[:2]) as s:
        s.update_local("f", [make_file("a", size=5), make_file("b", size=7)])
        s.update_remote("f", DEV_A, [make_file("c", ((9, 1),), size=3)])
    with IndexStore.open(path, LOCAL) as s:
        conn = s._conn()
        assert _triggers(conn, "sqlite_master") == set()  # the persistent ones are gone
        s.update_local("f", [make_file(f"new{i}", size=i) for i in range(50)])  # bulk path
        s.update_local("f", [make_file("a", ((1, 2),), size=50)])  # an update
        s.update_local("f", [make_deleted("b", ((1, 2),))])
        s.update_remote("f", DEV_A, [make_file("d", ((9, 2),), size=4)])
        assert_counts_exact(conn)
        assert s.counts("f").files == 51 and s.counts("f").deleted == 1
        assert s.need_counts("f").files == 2  # c and d, which only DEV_A has
    with IndexStore.open(path, LOCAL) as s:  # reopened: the writer installs them again
        s.update_local("f", [make_file("later", size=1)])
        assert_counts_exact(s._conn())


def test_a_failed_bulk_insert_leaves_the_count_triggers_in_place(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "i.db")
    try:
        installed = _triggers(conn, "sqlite_temp_master")
        assert len(installed) == 12  # three scopes: insert, delete, update old and new
        conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError), without_insert_counts(conn) as lifted:
            assert lifted and len(_triggers(conn, "sqlite_temp_master")) == 9
            conn.execute("INSERT INTO no_such_table VALUES (1)")
        conn.execute("ROLLBACK")
        assert _triggers(conn, "sqlite_temp_master") == installed
    finally:
        conn.close()
