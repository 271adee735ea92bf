"""The durable change log: one SQLite file (``history.sqlite3`` in the home) next to the
index, not inside it, so that history writes never hold the index writer's lock and a
damaged or deleted log never costs the index anything.

Blocking: call from a worker thread (``HistoryService`` does). Thread-safe.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import P2PSyncError
from .changes import Change, Kind, Origin

HISTORY_FILE = "history.sqlite3"
SCHEMA_VERSION = 1
DEFAULT_MAX_AGE_DAYS = 90
DEFAULT_MAX_ENTRIES = 1_000_000
# A deletion and a creation of the same content this close together are one rename, also
# when they were recorded apart (a scan stores its deletions after everything else).
RENAME_WINDOW_NS = 30 * 1_000_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    id           INTEGER PRIMARY KEY,
    folder       TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    origin       TEXT NOT NULL,
    device_short INTEGER NOT NULL,
    at_ns        INTEGER NOT NULL,
    item_type    INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    modified_ns  INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_name ON changes (folder, name, id);
CREATE INDEX IF NOT EXISTS changes_by_time ON changes (folder, at_ns);
-- rename pairing looks up each created or deleted file's content (without this index
-- every lookup scanned the last 30 s of rows: a 10,000-file pull cost seconds)
CREATE INDEX IF NOT EXISTS changes_by_content ON changes (folder, content_hash);
"""


class HistoryError(P2PSyncError):
    """The history log cannot be opened or written."""


@dataclass(frozen=True)
class Retention:
    max_age_days: int = DEFAULT_MAX_AGE_DAYS  # 0: no age limit
    max_entries: int = DEFAULT_MAX_ENTRIES  # per folder; 0: no count limit


class HistoryLog:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def open(cls, path: Path) -> HistoryLog:
        try:
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise HistoryError(
                    f"{path}: history schema version {version} is newer than this p2psync "
                    f"supports ({SCHEMA_VERSION})"
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot open the history log: {exc}") from exc
        return cls(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self.closed = True

    def __enter__(self) -> HistoryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, changes: Sequence[Change]) -> None:
        """Append ``changes`` in one transaction."""
        if not changes:
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                changes = self._pair_with_recent(changes)
                self._insert(changes)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise HistoryError(f"cannot write the history log: {exc}") from exc

    def _pair_with_recent(self, changes: Sequence[Change]) -> list[Change]:
        """Pair a deletion (creation) with a recent creation (deletion) of the same
        content already in the log: both become the two halves of a rename."""
        out = list(changes)
        for i, c in enumerate(out):
            if c.kind not in (Kind.DELETED, Kind.CREATED) or not c.content_hash:
                continue
            other = Kind.CREATED if c.kind is Kind.DELETED else Kind.DELETED
            row = self._conn.execute(
                "SELECT id, name FROM changes INDEXED BY changes_by_content"
                " WHERE folder = ? AND kind = ? AND size = ?"
                " AND content_hash = ? AND at_ns >= ? AND name != ? ORDER BY id DESC LIMIT 1",
                (c.folder, str(other), c.size, c.content_hash, c.at_ns - RENAME_WINDOW_NS, c.name),
            ).fetchone()
            if row is None:
                continue
            if c.kind is Kind.DELETED:
                theirs, mine = Kind.RENAMED_TO, Kind.RENAMED_FROM
            else:
                theirs, mine = Kind.RENAMED_FROM, Kind.RENAMED_TO
            self._conn.execute(
                "UPDATE changes SET kind = ?, detail = ? WHERE id = ?",
                (str(theirs), c.name, row[0]),
            )
            out[i] = Change(
                c.folder, c.name, mine, c.origin, c.device_short, c.at_ns, c.item_type, c.size,
                c.modified_ns, c.content_hash, row[1],
            )  # fmt: skip
        return out

    def _insert(self, changes: Sequence[Change]) -> None:
        rows = [
            (c.folder, c.name, str(c.kind), str(c.origin), _signed(c.device_short), c.at_ns,
             c.item_type, c.size, c.modified_ns, c.content_hash, c.detail)
            for c in changes
        ]  # fmt: skip
        self._conn.executemany(
            "INSERT INTO changes (folder, name, kind, origin, device_short, at_ns,"
            " item_type, size, modified_ns, content_hash, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def query(
        self,
        folder: str,
        *,
        name: str | None = None,
        since_ns: int | None = None,
        devices: Iterable[int] | None = None,
        limit: int = 1000,
    ) -> list[Change]:
        """Newest first. ``name`` also matches what is under it when it is a directory."""
        found = self.search([folder], name=name, since_ns=since_ns, devices=devices, limit=limit)
        return [c for _, c in found]

    def search(
        self,
        folders: Sequence[str],
        *,
        name: str | None = None,
        contains: str | None = None,
        since_ns: int | None = None,
        devices: Iterable[int] | None = None,
        kinds: Iterable[Kind] | None = None,
        before_id: int | None = None,
        limit: int = 1000,
    ) -> list[tuple[int, Change]]:
        """(row ID, change) pairs of ``folders``, newest first: ``name`` also matches what
        is under it; ``contains`` is a case-insensitive (ASCII) substring of the name;
        ``before_id`` continues a page (the last row ID it showed)."""
        sql = "SELECT id, folder, name, kind, origin, device_short, at_ns, item_type, size,"
        sql += " modified_ns, content_hash, detail FROM changes"
        sql += f" WHERE folder IN ({','.join('?' * len(folders)) or 'NULL'})"
        args: list[object] = list(folders)
        if name is not None:
            sql += " AND (name = ? OR (name >= ? AND name < ?))"
            args += [name, name + "/", name + "0"]  # "0" is the byte after "/"
        if contains:
            sql += r" AND name LIKE ? ESCAPE '\'"
            escaped = contains.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            args.append(f"%{escaped}%")
        if since_ns is not None:
            sql += " AND at_ns >= ?"
            args.append(since_ns)
        if devices is not None:
            shorts = [_signed(d) for d in devices]
            sql += f" AND device_short IN ({','.join('?' * len(shorts)) or 'NULL'})"
            args += shorts
        if kinds is not None:
            wanted = [str(k) for k in kinds]
            sql += f" AND kind IN ({','.join('?' * len(wanted)) or 'NULL'})"
            args += wanted
        if before_id is not None:
            sql += " AND id < ?"
            args.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [
            (i, Change(f, n, Kind(k), Origin(o), _unsigned(d), at, t, s, m, bytes(h), det))
            for i, f, n, k, o, d, at, t, s, m, h, det in rows
        ]

    def count(self, folder: str) -> int:
        with self._lock:
            return self._conn.execute(
                "SELECT count(*) FROM changes WHERE folder = ?", (folder,)
            ).fetchone()[0]

    def prune(self, folder: str, retention: Retention, now_ns: int) -> int:
        """Drop what is past the folder's retention; returns how many rows went."""
        removed = 0
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                if retention.max_age_days > 0:
                    cutoff = now_ns - retention.max_age_days * 86_400 * 1_000_000_000
                    cur = self._conn.execute(
                        "DELETE FROM changes WHERE folder = ? AND at_ns < ?", (folder, cutoff)
                    )
                    removed += cur.rowcount
                if retention.max_entries > 0:
                    row = self._conn.execute(
                        "SELECT id FROM changes WHERE folder = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                        (folder, retention.max_entries),
                    ).fetchone()
                    if row is not None:
                        cur = self._conn.execute(
                            "DELETE FROM changes WHERE folder = ? AND id <= ?", (folder, row[0])
                        )
                        removed += cur.rowcount
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise HistoryError(f"cannot prune the history log: {exc}") from exc
        return removed

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def forget_folder(self, folder: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM changes WHERE folder = ?", (folder,))


def _signed(short: int) -> int:
    """SQLite integers are signed 64-bit; short device IDs use all 64 bits."""
    return short - (1 << 64) if short >= 1 << 63 else short


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
