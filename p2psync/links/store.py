"""The links of a node and their download log: ``<home>/links.sqlite3``, mode 0600.

Blocking (SQLite): call from a worker thread. Each call opens its own connection, so the
store is safe from any thread and from the offline CLI while a daemon runs.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from .tokens import new_id, new_token

STORE_FILE = "links.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    password TEXT,
    max_downloads INTEGER,
    downloads INTEGER NOT NULL DEFAULT 0,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS downloads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id TEXT NOT NULL,
    at REAL NOT NULL,
    address TEXT NOT NULL,
    what TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS downloads_by_link ON downloads (link_id, seq);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Link:
    id: str
    token: str
    folder: str
    path: str  # folder-relative; "" = the whole folder
    created: float
    expires: float | None
    password: str | None  # the scrypt hash, never the password
    max_downloads: int | None
    downloads: int
    revoked: float | None

    def state(self, now: float) -> str:
        """The link's state: "active", or why it serves nothing ("revoked", "expired",
        "used up")."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        if self.max_downloads is not None and self.downloads >= self.max_downloads:
            return "used up"
        return "active"

    def public(self, now: float) -> dict[str, Any]:
        """What the API and ``link list`` show (the password hash left out)."""
        data = asdict(self)
        data.pop("password")
        data["has_password"] = self.password is not None
        data["state"] = self.state(now)
        return data


@dataclass(frozen=True)
class Download:
    seq: int
    link_id: str
    at: float
    address: str
    what: str
    bytes: int
    outcome: str  # "started", "complete", or "failed: <why>"


class LinkStore:
    def __init__(self, home: Path) -> None:
        self.path = Path(home) / STORE_FILE

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        os.chmod(self.path, 0o600)
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 10000")
            db.executescript(_SCHEMA)
            yield db
        finally:
            db.close()

    # ---- links ---------------------------------------------------------------------
    def create(
        self,
        *,
        folder: str,
        path: str,
        now: float,
        expires: float | None = None,
        password_hash: str | None = None,
        max_downloads: int | None = None,
    ) -> Link:
        link = Link(
            id=new_id(),
            token=new_token(),
            folder=folder,
            path=path,
            created=now,
            expires=expires,
            password=password_hash,
            max_downloads=max_downloads,
            downloads=0,
            revoked=None,
        )
        with self._db() as db:
            db.execute(
                "INSERT INTO links (id, token, folder, path, created, expires, password,"
                " max_downloads) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    link.id,
                    link.token,
                    folder,
                    path,
                    now,
                    expires,
                    password_hash,
                    max_downloads,
                ),
            )
        return link

    def links(self) -> list[Link]:
        if not self.exists():
            return []
        with self._db() as db:
            rows = db.execute(f"SELECT {_LINK_COLUMNS} FROM links ORDER BY created").fetchall()
        return [Link(*row) for row in rows]

    def by_token(self, token: str) -> Link | None:
        with self._db() as db:
            row = db.execute(
                f"SELECT {_LINK_COLUMNS} FROM links WHERE token = ?", (token,)
            ).fetchone()
        return Link(*row) if row else None

    def find(self, ref: str) -> Link:
        """The link with this id or token (or whose URL ends with the token)."""
        token = ref.rstrip("/").rpartition("/s/")[2].partition("/")[0] if "/s/" in ref else ref
        with self._db() as db:
            row = db.execute(
                f"SELECT {_LINK_COLUMNS} FROM links WHERE id = ? OR token = ?", (ref, token)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no link {ref!r}")
        return Link(*row)

    def revoke(self, ref: str, now: float) -> Link:
        link = self.find(ref)
        with self._db() as db:
            db.execute(
                "UPDATE links SET revoked = ? WHERE id = ? AND revoked IS NULL", (now, link.id)
            )
        return self.find(link.id)

    def claim_download(self, link_id: str, now: float) -> bool:
        """Count one download if the link is still active (atomic: concurrent downloads
        never exceed ``max_downloads``); False if it is not."""
        with self._db() as db:
            cursor = db.execute(
                "UPDATE links SET downloads = downloads + 1 WHERE id = ? AND revoked IS NULL"
                " AND (expires IS NULL OR expires > ?)"
                " AND (max_downloads IS NULL OR downloads < max_downloads)",
                (link_id, now),
            )
            return cursor.rowcount == 1

    # ---- download log ----------------------------------------------------------------
    def record(self, link_id: str, *, at: float, address: str, what: str) -> int:
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO downloads (link_id, at, address, what, outcome)"
                " VALUES (?, ?, ?, ?, 'started')",
                (link_id, at, address, what),
            )
            return int(cursor.lastrowid or 0)

    def finish(self, seq: int, *, sent: int, outcome: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE downloads SET bytes = ?, outcome = ? WHERE seq = ?", (sent, outcome, seq)
            )

    def downloads(self, link_id: str | None = None, limit: int = 1000) -> list[Download]:
        if not self.exists():
            return []
        with self._db() as db:
            if link_id is None:
                rows = db.execute(
                    f"SELECT {_DOWNLOAD_COLUMNS} FROM downloads ORDER BY seq DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = db.execute(
                    f"SELECT {_DOWNLOAD_COLUMNS} FROM downloads WHERE link_id = ?"
                    " ORDER BY seq DESC LIMIT ?",
                    (link_id, limit),
                ).fetchall()
        return [Download(*row) for row in rows]

    # ---- settings --------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        if not self.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


_LINK_COLUMNS = (
    "id, token, folder, path, created, expires, password, max_downloads, downloads, revoked"
)
_DOWNLOAD_COLUMNS = "seq, link_id, at, address, what, bytes, outcome"
