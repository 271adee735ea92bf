"""The read side of the index: per-thread connections, cached row ids, and the reads
of one device's entries (the global view and the need are in global_reads.py).

Reads run on the calling thread with that thread's own connection; WAL lets them run
while a write is in progress. Iterators page through the database with keyset queries in
bounded batches, so they hold no cursor between items, may be advanced from different
threads, and never load a whole folder. Each batch is a consistent snapshot; an
iteration as a whole is not: entries changed meanwhile may be seen in their old or new
state.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..errors import IndexError_
from ..protocol.fileinfo import FileInfo, LocalFileInfo
from . import codec, sqlite_schema

F = TypeVar("F", bound=FileInfo)

PAGE = 500

# the file columns prefixed for a query that joins ``files f``
F_COLUMNS = ", ".join(f"f.{c.strip()}" for c in codec.FILE_COLUMNS.split(","))


class BlockLocation(NamedTuple):
    """Where a block with a given hash lives in a local file."""

    folder: str
    name: str
    offset: int
    size: int


class Counts(NamedTuple):
    """Entries by kind; ``deleted`` counts tombstones of any type, which are in no other
    field; ``bytes`` sums the sizes of the entries that are not deleted."""

    files: int = 0
    directories: int = 0
    symlinks: int = 0
    deleted: int = 0
    bytes: int = 0


class _Readers:
    """One read-only connection per thread; connections of dead threads are closed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._closed = False

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise IndexError_("the index store is closed")
            live = []
            for thread_ref, other in self._conns:
                thread = thread_ref()
                if thread is None or not thread.is_alive():
                    other.close()
                else:
                    live.append((thread_ref, other))
            try:
                conn = sqlite_schema.connect(self._path, reader=True)
            except sqlite3.Error as exc:
                raise IndexError_(f"cannot open the index database: {exc}") from exc
            live.append((weakref.ref(threading.current_thread()), conn))
            self._conns = live
        self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _thread, conn in self._conns:
                conn.close()
            self._conns = []


class IndexReads:
    """Reads of the index at ``path`` for the device ``local_device``."""

    def __init__(self, path: Path, local_device: bytes) -> None:
        self.path = path
        self.local_device = local_device
        self._readers = _Readers(path)
        self._device_ids: dict[bytes, int] = {}  # devices rows are never deleted
        self._folder_ids: dict[str, int] = {}  # cleared when a folder is dropped

    # -- ids and primitives ----------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        return self._readers.get()

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        try:
            return self._conn().execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise IndexError_(f"reading the index failed: {exc}") from exc

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """For queries whose size is bounded (a LIMIT, or one row per device)."""
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise IndexError_(f"reading the index failed: {exc}") from exc

    def _folder_id(self, folder: str) -> int | None:
        fid = self._folder_ids.get(folder)
        if fid is None:
            row = self._one("SELECT id FROM folders WHERE name = ?", (folder,))
            if row is None:
                return None
            fid = self._folder_ids[folder] = row[0]
        return fid

    def _device_id(self, device: bytes) -> int | None:
        did = self._device_ids.get(device)
        if did is None:
            row = self._one("SELECT id FROM devices WHERE device = ?", (device,))
            if row is None:
                return None
            did = self._device_ids[device] = row[0]
        return did

    def _ids(self, folder: str, device: bytes) -> tuple[int, int] | None:
        fid = self._folder_id(folder)
        did = self._device_id(device)
        return None if fid is None or did is None else (fid, did)

    # -- single entries --------------------------------------------------------------

    def _get(self, folder: str, device: bytes, name: str, decode: Callable[[Any], F]) -> F | None:
        ids = self._ids(folder, device)
        if ids is None:
            return None
        row = self._one(
            f"SELECT {codec.FILE_COLUMNS} FROM files WHERE folder = ? AND device = ? AND name = ?",
            (*ids, codec.name_key(name)),
        )
        return decode(row) if row else None

    def get(self, folder: str, device: bytes, name: str) -> FileInfo | None:
        """``device``'s entry for ``name`` as peers see it (get_local has this device's
        own, with its bookkeeping)."""
        return self._get(folder, device, name, codec.row_to_file)

    def get_local(self, folder: str, name: str) -> LocalFileInfo | None:
        return self._get(folder, self.local_device, name, codec.row_to_local)

    def get_local_many(self, folder: str, names: Sequence[str]) -> dict[str, LocalFileInfo]:
        """``get_local`` of each name, a query per thousand names; names without a local
        entry are left out."""
        ids = self._ids(folder, self.local_device)
        return {} if ids is None else local_files_named(self._all, ids, names)

    # -- streams ---------------------------------------------------------------------

    def _pages(
        self,
        sql: str,
        params: Callable[[Any], Sequence[Any]],
        start: Any,
        size: int,
        cursor_of: Callable[[Any], Any],
    ) -> Iterator[list[Any]]:
        """Keyset pagination: run ``sql`` with ``params(cursor)`` until a short page."""
        cursor = start
        while True:
            rows = self._all(sql, (*params(cursor), size))
            if rows:
                yield rows
            if len(rows) < size:
                return
            cursor = cursor_of(rows[-1])

    def _iter_tree(
        self,
        select: str,
        name: str,
        ids: Sequence[Any],
        prefix: str,
        decode: Callable[[Any], F],
    ) -> Iterator[F]:
        """Rows of ``select`` (whose first column is the name key ``name``) in the
        subtree of ``prefix``, in key order, each through ``decode``."""
        exact, low, high = codec.subtree_range(prefix)
        if exact:
            for row in self._all(f"{select} AND {name} = ?", (*ids, exact)):
                yield decode(row)
        sql = f"{select} AND {name} > ? AND {name} < ? ORDER BY {name} LIMIT ?"
        for rows in self._pages(sql, lambda key: (*ids, key, high), low, PAGE, lambda row: row[0]):
            for row in rows:
                yield decode(row)

    def _iter_files(
        self, folder: str, device: bytes, prefix: str, decode: Callable[[Any], F]
    ) -> Iterator[F]:
        ids = self._ids(folder, device)
        if ids is None:
            return
        yield from self._iter_tree(
            f"SELECT {codec.FILE_COLUMNS} FROM files WHERE folder = ? AND device = ?",
            "name",
            ids,
            prefix,
            decode,
        )

    def iter_local(self, folder: str, prefix: str = "") -> Iterator[LocalFileInfo]:
        """The local entries named ``prefix`` or under ``prefix/`` (all for ""), in
        code-point order of their names — the scanner's walk order (a parent always
        comes before everything under it)."""
        yield from self._iter_files(folder, self.local_device, prefix, codec.row_to_local)

    def has_live_local(self, folder: str, prefixes: Sequence[str]) -> bool:
        """Whether any local entry that is not a deletion is named one of ``prefixes`` or
        lies under one ("" is the whole folder): what a scan of them could delete."""
        ids = self._ids(folder, self.local_device)
        if ids is None:
            return False
        for prefix in prefixes:
            exact, low, high = codec.subtree_range(prefix)
            if self._one(
                "SELECT 1 FROM files WHERE folder = ? AND device = ? AND deleted = 0 "
                "AND (name = ? OR (name > ? AND name < ?)) LIMIT 1",
                (*ids, exact, low, high),
            ):
                return True
        return False

    def iter_device(self, folder: str, device: bytes, prefix: str = "") -> Iterator[FileInfo]:
        """Like iter_local, for any device, as peers see the entries."""
        yield from self._iter_files(folder, device, prefix, codec.row_to_file)

    def iter_local_since(
        self, folder: str, sequence: int, batch_size: int = 1000
    ) -> Iterator[list[LocalFileInfo]]:
        """Local entries with a sequence above ``sequence``, in increasing sequence order,
        in lists of at most ``batch_size`` (for index exchange)."""
        ids = self._ids(folder, self.local_device)
        if ids is None:
            return
        sql = (
            f"SELECT {codec.FILE_COLUMNS} FROM files WHERE folder = ? AND device = ? "
            "AND sequence > ? ORDER BY sequence LIMIT ?"
        )
        for rows in self._pages(
            sql, lambda seq: (*ids, seq), sequence, batch_size, lambda row: row[6]
        ):
            yield [codec.row_to_local(row) for row in rows]

    def blocks_present(self, hashes: Iterable[bytes]) -> set[bytes]:
        """Which of ``hashes`` the block map holds at all (one query per thousand): a
        batch of new content asks once instead of ``find_block`` per block."""
        present: set[bytes] = set()
        for chunk, marks in codec.in_chunks(set(hashes), PAGE):
            present.update(
                row[0]
                for row in self._all(
                    f"SELECT DISTINCT hash FROM blockmap WHERE hash IN ({marks})", chunk
                )
            )
        return present

    def find_block(self, hash: bytes) -> Iterator[BlockLocation]:
        """Where local, non-deleted, valid files hold a block with this SHA-256."""
        sql = (
            "SELECT b.file, b.offset, fo.name, f.name, b.size FROM blockmap b "
            "JOIN files f ON f.id = b.file JOIN folders fo ON fo.id = f.folder "
            "WHERE b.hash = ? AND (b.file, b.offset) > (?, ?) ORDER BY b.file, b.offset LIMIT ?"
        )
        for rows in self._pages(
            sql, lambda cur: (hash, *cur), (-1, -1), PAGE, lambda row: (row[0], row[1])
        ):
            for _file, offset, folder, key, size in rows:
                yield BlockLocation(folder, codec.key_name(key), offset, size)

    # -- bookkeeping -----------------------------------------------------------------

    def max_sequence(self, folder: str, device: bytes) -> int:
        """The highest sequence stored for ``device`` in ``folder`` (0 if none)."""
        ids = self._ids(folder, device)
        if ids is None:
            return 0
        row = self._one(
            "SELECT max_sequence FROM folder_devices WHERE folder = ? AND device = ?", ids
        )
        return row[0] if row else 0

    def index_id(self, folder: str, device: bytes) -> int:
        """The index ID recorded for ``device`` in ``folder`` (0 if none)."""
        ids = self._ids(folder, device)
        if ids is None:
            return 0
        row = self._one("SELECT index_id FROM folder_devices WHERE folder = ? AND device = ?", ids)
        return codec.to_unsigned(row[0]) if row else 0

    def _counts(self, folder: str, scope: int | None) -> Counts:
        fid = self._folder_id(folder)
        if fid is None or scope is None:
            return Counts()
        row = self._one(
            "SELECT files, directories, symlinks, deleted, bytes FROM counts "
            "WHERE folder = ? AND scope = ?",
            (fid, scope),
        )
        return Counts(*row) if row else Counts()

    def counts(self, folder: str, device: bytes | None = None) -> Counts:
        """Counts of a device's entries (the local device by default)."""
        return self._counts(folder, self._device_id(device or self.local_device))

    def count_local_flagged(self, folder: str, flag: int) -> int:
        """How many local entries carry ``flag`` in their local flags (e.g. the local
        changes of a receive-only folder)."""
        ids = self._ids(folder, self.local_device)
        if ids is None:
            return 0
        row = self._one(
            "SELECT COUNT(*) FROM files WHERE folder = ? AND device = ? AND (local_flags & ?) <> 0",
            (*ids, flag),
        )
        return row[0] if row else 0

    def local_flagged_totals(self, folder: str, flag: int) -> tuple[int, int]:
        """How many live (not deleted) local entries carry ``flag``, and their bytes (the
        sizes they record: e.g. what selective sync leaves out)."""
        ids = self._ids(folder, self.local_device)
        if ids is None:
            return 0, 0
        row = self._one(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files "
            "WHERE folder = ? AND device = ? AND (local_flags & ?) <> 0 AND deleted = 0",
            (*ids, flag),
        )
        return (row[0], row[1]) if row else (0, 0)

    def folders(self) -> list[str]:
        """Folders with any stored state, sorted."""
        return [row[0] for row in self._all("SELECT name FROM folders ORDER BY name", ())]

    def devices(self, folder: str) -> list[bytes]:
        """Devices (the local one included) with entries or an index ID in ``folder``."""
        fid = self._folder_id(folder)
        if fid is None:
            return []
        rows = self._all(
            "SELECT d.device FROM folder_devices fd JOIN devices d ON d.id = fd.device "
            "WHERE fd.folder = ? ORDER BY d.device",
            (fid,),
        )
        return [row[0] for row in rows]


def local_files_named(
    query: Callable[[str, Sequence[Any]], Iterable[Any]],
    ids: Sequence[int],
    names: Sequence[str],
) -> dict[str, LocalFileInfo]:
    """The local entries of one (folder, local device) with these names, a query per page
    of names (through ``query``: a reader's or the writer's connection); absent names
    left out."""
    found: dict[str, LocalFileInfo] = {}
    for chunk, marks in codec.in_chunks(map(codec.name_key, names), PAGE):
        for row in query(
            f"SELECT {codec.FILE_COLUMNS} FROM files "
            f"WHERE folder = ? AND device = ? AND name IN ({marks})",
            (*ids, *chunk),
        ):
            fi = codec.row_to_local(row)
            found[fi.name] = fi
    return found
