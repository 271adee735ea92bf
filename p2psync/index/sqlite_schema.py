"""Opening the index database: sanity checks, pragmas and schema migrations.

The schema version is SQLite's ``user_version``; ``MIGRATIONS[i]`` takes the schema from
version i to i + 1 and runs in its own transaction together with the version bump, so a
crash during an upgrade leaves the previous version intact.

``synchronous=NORMAL``: in WAL mode this is still crash-safe against a killed process
(every commit is in the WAL before the call returns) and the database can never be
corrupted; only a power loss may roll back the last few commits. The index is derived
state — a rescan and the next index exchange repair it — so one fsync per checkpoint
instead of one per commit is the right trade.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexCorruptError, IndexError_

APPLICATION_ID = 0x50325053  # "P2PS" in the database header: this file is ours
MIN_ROOM_TO_OPEN = 1024 * 1024  # less free than this: a failed open is a full disk, not damage

Migration = Callable[[sqlite3.Connection], None]

_SCHEMA_1 = """
CREATE TABLE folders (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: readers resolve ids
    name    TEXT NOT NULL UNIQUE
);
CREATE TABLE devices (
    id      INTEGER PRIMARY KEY,
    device  BLOB NOT NULL UNIQUE
);
CREATE TABLE folder_devices (
    folder        INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    device        INTEGER NOT NULL,
    index_id      INTEGER NOT NULL DEFAULT 0,
    max_sequence  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (folder, device)
) WITHOUT ROWID;
CREATE TABLE files (
    id           INTEGER PRIMARY KEY,
    folder       INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    device       INTEGER NOT NULL,
    name         BLOB NOT NULL,
    type         INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    modified_ns  INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    invalid      INTEGER NOT NULL,
    sequence     INTEGER NOT NULL,
    local_flags  INTEGER NOT NULL,
    version      BLOB NOT NULL,
    extra        BLOB NOT NULL,
    UNIQUE (folder, device, name)
);
CREATE INDEX files_by_name ON files (folder, name);
CREATE INDEX files_by_sequence ON files (folder, device, sequence);
CREATE TABLE globals (
    folder   INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    name     BLOB NOT NULL,
    device   INTEGER NOT NULL,
    version  BLOB NOT NULL,
    type     INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    deleted  INTEGER NOT NULL,
    invalid  INTEGER NOT NULL,
    need     INTEGER,  -- NULL: not needed, else the pull phase (writes.py)
    PRIMARY KEY (folder, name)
) WITHOUT ROWID;
CREATE INDEX globals_need ON globals (folder, need, name) WHERE need IS NOT NULL;
CREATE TABLE blockmap (
    hash    BLOB NOT NULL,
    file    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    offset  INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    PRIMARY KEY (hash, file, offset)
) WITHOUT ROWID;
CREATE INDEX blockmap_by_file ON blockmap (file);
CREATE TABLE counts (
    folder       INTEGER NOT NULL,
    scope        INTEGER NOT NULL,
    files        INTEGER NOT NULL DEFAULT 0,
    directories  INTEGER NOT NULL DEFAULT 0,
    symlinks     INTEGER NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (folder, scope)
) WITHOUT ROWID;
"""

# counts.scope: a device's row id for that device's entries, or one of these.
SCOPE_GLOBAL = 0
SCOPE_NEED = -1

# Triggers keep ``counts`` exact in the same transaction as every change:
# (table, scope expression, which rows count).
_COUNTED = (
    ("files", "device", "device", "1", ("deleted", "type", "size")),
    (
        "globals",
        "global",
        str(SCOPE_GLOBAL),
        "{r}.invalid = 0",
        ("deleted", "type", "size", "invalid"),
    ),
    (
        "globals",
        "need",
        str(SCOPE_NEED),
        "{r}.need IS NOT NULL",
        ("deleted", "type", "size", "need"),
    ),
)


def _count_upsert(r: str, scope: str, sign: str) -> str:
    values = (
        f"{sign}({r}.deleted = 0 AND {r}.type = 0)",
        f"{sign}({r}.deleted = 0 AND {r}.type = 1)",
        f"{sign}({r}.deleted = 0 AND {r}.type = 4)",
        f"{sign}({r}.deleted <> 0)",
        f"{sign}(CASE WHEN {r}.deleted = 0 THEN {r}.size ELSE 0 END)",
    )
    scope_value = f"{r}.{scope}" if scope == "device" else scope
    return (
        "INSERT INTO counts (folder, scope, files, directories, symlinks, deleted, bytes) "
        f"VALUES ({r}.folder, {scope_value}, {', '.join(values)}) "
        f"ON CONFLICT (folder, scope) DO UPDATE SET {_COUNT_SUMS}"
    )


_COUNT_SUMS = (
    "files = files + excluded.files, directories = directories + excluded.directories, "
    "symlinks = symlinks + excluded.symlinks, deleted = deleted + excluded.deleted, "
    "bytes = bytes + excluded.bytes"
)


def _count_triggers(*, temp: bool = False) -> list[tuple[str, str]]:
    """The count triggers as (name, CREATE statement): persistent ones (schema versions
    1-2, frozen), or the TEMP ones of the writer connection (version 3 on)."""
    create = "CREATE TEMP TRIGGER IF NOT EXISTS" if temp else "CREATE TRIGGER"
    schema = "main." if temp else ""
    triggers = []
    for table, label, scope, counted, columns in _COUNTED:
        changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns)
        for event, sides in (
            ("INSERT", (("new", ""),)),
            ("DELETE", (("old", "-"),)),
            ("UPDATE", (("old", "-"), ("new", ""))),
        ):
            for r, sign in sides:
                when = counted.format(r=r)
                if event == "UPDATE":
                    when = f"({when}) AND ({changed})"
                name = f"count_{table}_{label}_{event.lower()}_{r}"
                triggers.append(
                    (
                        name,
                        f"{create} {name} AFTER {event} ON {schema}{table} WHEN {when} "
                        f"BEGIN {_count_upsert(r, scope, sign)}; END",
                    )
                )
    return triggers


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, breaking the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _SCHEMA_1)
    for _, trigger in _count_triggers():
        conn.execute(trigger)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


# Version 2: records of files the puller is about to rename into place (see
# IndexStore.note_applying), written before the renames and removed with the records.
_SCHEMA_2 = """
CREATE TABLE applying (
    folder       INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    name         BLOB NOT NULL,
    type         INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    modified_ns  INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    invalid      INTEGER NOT NULL,
    sequence     INTEGER NOT NULL,
    local_flags  INTEGER NOT NULL,
    version      BLOB NOT NULL,
    extra        BLOB NOT NULL,
    PRIMARY KEY (folder, name)
) WITHOUT ROWID;
"""


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    _run_script(conn, _SCHEMA_2)


# Version 3: the count triggers become TEMP triggers of the writer connection
# (``install_count_triggers``), so that a bulk insert can leave them out and add its
# counts in one statement (``without_insert_counts``).
def _migrate_to_3(conn: sqlite3.Connection) -> None:
    for name, _ in _count_triggers():
        conn.execute(f"DROP TRIGGER IF EXISTS main.{name}")


MIGRATIONS: list[Migration] = [_migrate_to_1, _migrate_to_2, _migrate_to_3]
_TEMP_COUNT_TRIGGERS_SINCE = 3

# The triggers that count inserted rows; ``without_insert_counts`` lifts them.
_INSERT_COUNT_TRIGGERS = tuple(f"count_{table}_{label}_insert_new" for table, label, *_ in _COUNTED)
_INSERT_COUNT_TRIGGER_SQL = tuple(
    sql for name, sql in _count_triggers(temp=True) if name in _INSERT_COUNT_TRIGGERS
)


def install_count_triggers(conn: sqlite3.Connection) -> None:
    """Create the count triggers on the writer connection (TEMP: they live as long as it).

    Only the writer connection writes; readers are ``query_only``.
    """
    for _, statement in _count_triggers(temp=True):
        conn.execute(statement)


@contextmanager
def without_insert_counts(conn: sqlite3.Connection) -> Iterator[bool]:
    """Inside a write transaction: rows inserted in the block are not counted by the
    triggers, and the caller must add their counts itself (``add_counts``) in the same
    transaction. Per-row triggers cost about as much as the inserts they follow.

    Yields False, lifting nothing, on an index opened below schema version 3 (tests of
    old versions), whose persistent triggers do count the rows.
    """
    temp = conn.execute(
        "SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger' AND name = ?",
        (_INSERT_COUNT_TRIGGERS[0],),
    ).fetchone()[0]
    if not temp:
        yield False
        return
    for name in _INSERT_COUNT_TRIGGERS:
        conn.execute(f"DROP TRIGGER temp.{name}")
    try:
        yield True
    finally:
        for statement in _INSERT_COUNT_TRIGGER_SQL:
            conn.execute(statement)


def count_delta(rows: Iterable[tuple[int, bool, int]]) -> tuple[int, int, int, int, int]:
    """What the insert triggers would add for rows of (type, deleted, size): files,
    directories, symlinks, deleted, bytes (keep in step with ``_count_upsert``)."""
    files = directories = symlinks = deleted = size_sum = 0
    for ftype, is_deleted, size in rows:
        if is_deleted:
            deleted += 1
            continue
        size_sum += size
        if ftype == 0:
            files += 1
        elif ftype == 1:
            directories += 1
        elif ftype == 4:
            symlinks += 1
    return files, directories, symlinks, deleted, size_sum


def add_counts(
    conn: sqlite3.Connection, folder: int, scope: int, delta: tuple[int, int, int, int, int]
) -> None:
    conn.execute(
        "INSERT INTO counts (folder, scope, files, directories, symlinks, deleted, bytes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT (folder, scope) DO UPDATE SET {_COUNT_SUMS}",
        (folder, scope, *delta),
    )


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> None:
    """Bring the schema up to ``len(migrations)``, one transaction per step."""
    current = schema_version(conn)
    if current > len(migrations):
        raise IndexError_(
            f"the index schema version {current} is newer than this p2psync supports "
            f"({len(migrations)}); upgrade p2psync or remove the index to rebuild it"
        )
    for target, step in enumerate(migrations[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except Exception as exc:
            conn.execute("ROLLBACK")
            raise IndexError_(
                f"upgrading the index schema to version {target} failed: {exc}"
            ) from exc


def connect(path: Path, *, reader: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with our pragmas."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        if reader:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA cache_size = -16000")  # 16 MiB for the writer
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _no_room_next_to(path: Path) -> bool:
    """Whether the index's file system is full: opening needs room for the -wal and -shm
    files, and fails ("disk I/O error", "database or disk is full") without it. That is no
    damage and never a reason to set the database aside."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < MIN_ROOM_TO_OPEN


def open_database(path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> sqlite3.Connection:
    """The writer connection to a checked, migrated database in WAL mode."""
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        _check_ours(conn, path)
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise IndexCorruptError(f"the index database {path} is damaged: {check}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise IndexError_(f"the index database {path} cannot use WAL mode (got {mode!r})")
        migrate(conn, migrations)
        if schema_version(conn) >= _TEMP_COUNT_TRIGGERS_SINCE:
            install_count_triggers(conn)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            message = str(exc).lower()
            if _no_room_next_to(path):
                raise IndexError_(
                    f"cannot open the index database {path}: its disk is full ({exc}); "
                    "free some space there"
                ) from exc
            if any(
                w in message for w in ("locked", "busy", "unable to open", "readonly", "read-only")
            ):
                # a condition of the moment, not damage: never a reason to rebuild
                raise IndexError_(f"cannot open the index database {path}: {exc}") from exc
            raise IndexCorruptError(  # e.g. "disk I/O error" on a truncated file
                f"the index database {path} is damaged ({exc})"
            ) from exc
        if isinstance(exc, sqlite3.DatabaseError):  # not a database, malformed
            raise IndexCorruptError(
                f"{path} is not a valid p2psync index database ({exc}); "
                "move it away and p2psync will rebuild the index"
            ) from exc
        raise


def _check_ours(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id != 0 or tables:
        raise IndexCorruptError(
            f"{path} is an SQLite database of another application, not a p2psync index"
        )
