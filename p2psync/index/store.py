"""IndexStore: the SQLite index of every device's FileInfos per folder.

Synchronous and thread-safe; the daemon calls it through ``trio.to_thread.run_sync`` with
a CapacityLimiter. Writes go to the one writer thread (writer.py), which commits calls
that queue up together in one transaction. Reads run on the calling thread with that
thread's own connection; WAL lets them run while a write is in progress.

Iterators page through the database with keyset queries in bounded batches, so they hold
no cursor between items, may be advanced from different threads, and never load a whole
folder. Each batch is a consistent snapshot; an iteration as a whole is not: entries
changed meanwhile may be seen in their old or new state.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..errors import IndexError_
from ..protocol.fileinfo import FileInfo
from . import codec, sqlite_schema
from .sqlite_schema import SCOPE_GLOBAL, SCOPE_NEED, Migration
from .writer import Writer
from .writes import Mutations

T = TypeVar("T")

_PAGE = 500


@dataclass
class NeedCursor:
    """Where a walk of ``IndexStore.iter_need`` stands: the pull phase and name key of the
    last entry it yielded."""

    need: int = 0
    name: bytes = b""


_F_COLUMNS = ", ".join(f"f.{c.strip()}" for c in codec.FILE_COLUMNS.split(","))


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


# Told of every stored local change: (folder, [(before or None, after as stored)], applied).
LocalChangeObserver = Callable[[str, list[tuple[FileInfo | None, FileInfo]], bool], None]


class IndexStore:
    """See the module docstring. Create with ``IndexStore.open``."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        local_device: bytes,
        on_local_change: LocalChangeObserver | None = None,
    ) -> None:
        self.path = path
        self.local_device = local_device
        self._on_local_change = on_local_change
        self._mutations = Mutations(local_device)
        self._writer = Writer(conn)
        self._writer.on_rollback(self._mutations.reset_caches)
        self._readers = _Readers(path)
        self._device_ids: dict[bytes, int] = {}  # devices rows are never deleted
        self._folder_ids: dict[str, int] = {}  # cleared by drop_folder

    @classmethod
    def open(
        cls,
        path: Path,
        local_device: bytes,
        *,
        migrations: Sequence[Migration] = sqlite_schema.MIGRATIONS,
        on_local_change: LocalChangeObserver | None = None,
    ) -> IndexStore:
        """Open (creating or upgrading) the index at ``path``; IndexError_ if unusable.
        ``on_local_change(folder, [(before, after), ...], applied)`` hears of every
        stored local change (the history log), after its transaction."""
        if len(local_device) != 32:
            raise IndexError_("the local device ID must be 32 raw bytes")
        conn = sqlite_schema.open_database(Path(path), migrations)
        return cls(Path(path), conn, local_device, on_local_change)

    def close(self) -> None:
        """Finish queued writes and close every connection (no reads may be running)."""
        self._writer.close()
        self._readers.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------

    def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return self._writer.run(job)

    def update_local(
        self, folder: str, files: Sequence[FileInfo], *, applied: bool = False
    ) -> list[FileInfo]:
        """Store local changes with the folder's next sequence numbers; returns them as
        stored (sequence set). Updates the block map, global versions and need.
        ``applied``: these are the puller's records, so their ``note_applying`` rows go in
        the same transaction."""
        files = list(files)
        if not files:
            return []
        observer = self._on_local_change
        if observer is None:
            return self._write(lambda c: self._mutations.update_local(c, folder, files, applied))

        def job(c: sqlite3.Connection) -> tuple[dict[str, FileInfo], list[FileInfo]]:
            before = self._local_rows(c, folder, [f.name for f in files])
            return before, self._mutations.update_local(c, folder, files, applied)

        before, stored = self._write(job)
        observer(folder, [(before.get(f.name), f) for f in stored], applied)
        return stored

    def _local_rows(
        self, conn: sqlite3.Connection, folder: str, names: Sequence[str]
    ) -> dict[str, FileInfo]:
        """``get_local_many`` on the writer's connection, inside its transaction."""
        row = conn.execute(
            "SELECT f.id, d.id FROM folders f, devices d WHERE f.name = ? AND d.device = ?",
            (folder, self.local_device),
        ).fetchone()
        if row is None:
            return {}
        return _files_named(lambda sql, params: conn.execute(sql, params), row, names)

    def note_applying(self, folder: str, files: Sequence[FileInfo]) -> None:
        """Remember the records of files about to be renamed into place, before the renames.
        A daemon killed after a rename but before ``update_local(applied=True)`` finds them
        here at its next start (``applying``) and adopts each file that is still exactly
        what was renamed in (same inode, size and mtime), instead of taking it for a local
        edit."""
        self.note_applying_soon(folder, files).result()

    def note_applying_soon(self, folder: str, files: Sequence[FileInfo]) -> Future[None]:
        """``note_applying`` without waiting; the renames must wait for the future."""
        files = list(files)
        if not files:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._writer.submit(lambda c: self._mutations.note_applying(c, folder, files))

    def applying(self, folder: str) -> list[FileInfo]:
        """The records noted by ``note_applying`` and not yet stored."""
        fid = self._folder_id(folder)
        if fid is None:
            return []
        rows = self._all(
            f"SELECT {codec.FILE_COLUMNS} FROM applying WHERE folder = ? ORDER BY name", (fid,)
        )
        return [codec.row_to_file(row) for row in rows]

    def clear_applying(self, folder: str) -> None:
        self._write(lambda c: self._mutations.clear_applying(c, folder))

    def update_remote(self, folder: str, device: bytes, files: Sequence[FileInfo]) -> None:
        """Merge a remote device's entries (an IndexUpdate) as given, sequences kept."""
        files = list(files)
        if files:
            self._write(lambda c: self._mutations.update_remote(c, folder, device, files))

    def replace_remote(self, folder: str, device: bytes, files: Sequence[FileInfo]) -> None:
        """A full Index from ``device``: forget its entries, then store ``files`` (the
        first batch; later batches follow through update_remote)."""
        files = list(files)
        self._write(lambda c: self._mutations.replace_remote(c, folder, device, files))

    def clear_remote(self, folder: str, device: bytes) -> None:
        """Forget a remote device's entries and max sequence; its index ID is kept."""
        self._write(lambda c: self._mutations.clear_remote(c, folder, device))

    def set_index_id(self, folder: str, device: bytes, index_id: int) -> None:
        self._write(lambda c: self._mutations.set_index_id(c, folder, device, index_id))

    def drop_device(self, folder: str, device: bytes) -> None:
        """Forget everything about ``device`` in ``folder``, its index ID included."""
        self._write(lambda c: self._mutations.drop_device(c, folder, device))

    def reset_local(self, folder: str) -> int:
        """Forget this device's entries in ``folder`` under a new local index ID, so the
        folder starts from the cluster's state (peers drop our old entries instead of
        seeing deletions). Returns the new index ID."""
        return self._write(lambda c: self._mutations.reset_local(c, folder))

    def drop_folder(self, folder: str) -> None:
        """Forget the folder entirely; a re-added folder starts with a new local index ID."""
        self._folder_ids.pop(folder, None)
        self._write(lambda c: self._mutations.drop_folder(c, folder))
        self._folder_ids.pop(folder, None)

    def local_index_id(self, folder: str) -> int:
        """This device's index ID for ``folder``: a random non-zero uint64, created on
        first use and renewed only when the folder is dropped."""
        index_id = self.index_id(folder, self.local_device)
        if index_id:
            return index_id
        return self._write(lambda c: self._mutations.ensure_local_index_id(c, folder))

    # -- reads: ids ------------------------------------------------------------------

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

    # -- reads: single entries -------------------------------------------------------

    def get(self, folder: str, device: bytes, name: str) -> FileInfo | None:
        ids = self._ids(folder, device)
        if ids is None:
            return None
        row = self._one(
            f"SELECT {codec.FILE_COLUMNS} FROM files WHERE folder = ? AND device = ? AND name = ?",
            (*ids, codec.name_key(name)),
        )
        return codec.row_to_file(row) if row else None

    def get_local(self, folder: str, name: str) -> FileInfo | None:
        return self.get(folder, self.local_device, name)

    def get_local_many(self, folder: str, names: Sequence[str]) -> dict[str, FileInfo]:
        """``get_local`` of each name, a query per thousand names; names without a local
        entry are left out."""
        ids = self._ids(folder, self.local_device)
        return {} if ids is None else _files_named(self._all, ids, names)

    def get_global(self, folder: str, name: str) -> FileInfo | None:
        """The global version of ``name`` (may be invalid if no device has a valid one)."""
        fid = self._folder_id(folder)
        if fid is None:
            return None
        row = self._one(
            f"SELECT {_F_COLUMNS} FROM globals g JOIN files f "
            "ON f.folder = g.folder AND f.device = g.device AND f.name = g.name "
            "WHERE g.folder = ? AND g.name = ?",
            (fid, codec.name_key(name)),
        )
        return codec.row_to_file(row) if row else None

    def devices_with_global(self, folder: str, name: str) -> list[bytes]:
        """Remote devices holding a valid entry with the global version of ``name`` —
        the ones to fetch its blocks from. The local device is never listed."""
        return self.devices_with_global_many(folder, [name])[name]

    def devices_with_global_many(self, folder: str, names: Sequence[str]) -> dict[str, list[bytes]]:
        """``devices_with_global`` of each name, a query per few hundred names (every
        name is in the result, with no devices if none holds its global version)."""
        holders: dict[str, list[bytes]] = {name: [] for name in names}
        fid = self._folder_id(folder)
        if fid is None:
            return holders
        for chunk, marks in codec.in_chunks(map(codec.name_key, holders), _PAGE):
            for key, device in self._all(
                "SELECT g.name, d.device FROM globals g "
                "JOIN files f ON f.folder = g.folder AND f.name = g.name AND f.version = g.version "
                "JOIN devices d ON d.id = f.device "
                f"WHERE g.folder = ? AND g.name IN ({marks}) AND f.invalid = 0 AND d.device <> ? "
                "ORDER BY g.name, d.device",
                (fid, *chunk, self.local_device),
            ):
                holders[codec.key_name(key)].append(device)
        return holders

    # -- reads: streams --------------------------------------------------------------

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
        self, select: str, name: str, ids: Sequence[Any], prefix: str
    ) -> Iterator[FileInfo]:
        """Rows of ``select`` (whose first column is the name key ``name``) in the
        subtree of ``prefix``, in key order."""
        exact, low, high = codec.subtree_range(prefix)
        if exact:
            for row in self._all(f"{select} AND {name} = ?", (*ids, exact)):
                yield codec.row_to_file(row)
        sql = f"{select} AND {name} > ? AND {name} < ? ORDER BY {name} LIMIT ?"
        for rows in self._pages(sql, lambda key: (*ids, key, high), low, _PAGE, lambda row: row[0]):
            for row in rows:
                yield codec.row_to_file(row)

    def iter_local(self, folder: str, prefix: str = "") -> Iterator[FileInfo]:
        """The local entries named ``prefix`` or under ``prefix/`` (all for ""), in
        code-point order of their names — the scanner's walk order (a parent always
        comes before everything under it)."""
        yield from self.iter_device(folder, self.local_device, prefix)

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
        """Like iter_local, for any device."""
        ids = self._ids(folder, device)
        if ids is None:
            return
        yield from self._iter_tree(
            f"SELECT {codec.FILE_COLUMNS} FROM files WHERE folder = ? AND device = ?",
            "name",
            ids,
            prefix,
        )

    def iter_global(self, folder: str, prefix: str = "") -> Iterator[FileInfo]:
        """The global version of every name (``prefix`` as in iter_local), in walk order;
        includes deleted and invalid globals."""
        fid = self._folder_id(folder)
        if fid is None:
            return
        yield from self._iter_tree(
            f"SELECT {_F_COLUMNS} FROM globals g JOIN files f ON f.folder = g.folder "
            "AND f.device = g.device AND f.name = g.name WHERE g.folder = ?",
            "g.name",
            (fid,),
            prefix,
        )

    def iter_local_since(
        self, folder: str, sequence: int, batch_size: int = 1000
    ) -> Iterator[list[FileInfo]]:
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
            yield [codec.row_to_file(row) for row in rows]

    def iter_need(
        self, folder: str, batch_size: int = _PAGE, cursor: NeedCursor | None = None
    ) -> Generator[FileInfo, None, None]:
        """The global FileInfos the local device needs, in pull order: directories to
        create (parents first), then files and symlinks, then deletions (of any type);
        within each phase in walk order (see iter_local). A puller deleting directories
        should take the deletions in reverse. With ``cursor``, starts after the entry it
        names and moves it along: a new walk with the same cursor continues where this
        one stopped."""
        fid = self._folder_id(folder)
        if fid is None:
            return
        if cursor is None:
            cursor = NeedCursor()
        sql = (
            f"SELECT g.need, {_F_COLUMNS} FROM globals g JOIN files f ON f.folder = g.folder "
            "AND f.device = g.device AND f.name = g.name "
            "WHERE g.folder = ? AND g.need IS NOT NULL AND (g.need, g.name) > (?, ?) "
            "ORDER BY g.need, g.name LIMIT ?"
        )
        for rows in self._pages(
            sql,
            lambda cur: (fid, *cur),
            (cursor.need, cursor.name),
            batch_size,
            lambda row: (row[0], row[1]),
        ):
            for row in rows:
                cursor.need, cursor.name = row[0], row[1]
                yield codec.row_to_file(row[1:])

    def blocks_present(self, hashes: Iterable[bytes]) -> set[bytes]:
        """Which of ``hashes`` the block map holds at all (one query per thousand): a
        batch of new content asks once instead of ``find_block`` per block."""
        present: set[bytes] = set()
        for chunk, marks in codec.in_chunks(set(hashes), _PAGE):
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
            sql, lambda cur: (hash, *cur), (-1, -1), _PAGE, lambda row: (row[0], row[1])
        ):
            for _file, offset, folder, key, size in rows:
                yield BlockLocation(folder, codec.key_name(key), offset, size)

    # -- reads: bookkeeping ----------------------------------------------------------

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

    def global_counts(self, folder: str) -> Counts:
        """Counts of the global versions, invalid ones excluded."""
        return self._counts(folder, SCOPE_GLOBAL)

    def need_counts(self, folder: str) -> Counts:
        """Counts of what the local device needs (deleted = deletions to apply)."""
        return self._counts(folder, SCOPE_NEED)

    def need_counts_of(self, folder: str, device: bytes) -> Counts:
        """What ``device`` still needs of the global state, as far as its index tells:
        valid global entries it holds no valid copy of at that version; a global
        deletion counts only where it still has the item. One pass over the folder's
        globals (for completion, not for every poll of a large folder)."""
        fid = self._folder_id(folder)
        did = self._device_id(device)
        if fid is None:
            return Counts()
        row = self._one(
            "SELECT "
            "COALESCE(SUM(g.deleted = 0 AND g.type = 0), 0), "
            "COALESCE(SUM(g.deleted = 0 AND g.type = 1), 0), "
            "COALESCE(SUM(g.deleted = 0 AND g.type = 4), 0), "
            "COALESCE(SUM(g.deleted <> 0), 0), "
            "COALESCE(SUM(CASE WHEN g.deleted = 0 THEN g.size ELSE 0 END), 0) "
            "FROM globals g LEFT JOIN files f "
            "ON f.folder = g.folder AND f.device = ? AND f.name = g.name "
            "WHERE g.folder = ? AND g.invalid = 0 "
            "AND (f.id IS NULL OR f.version <> g.version OR f.invalid <> 0) "
            "AND NOT (g.deleted <> 0 AND (f.id IS NULL OR f.deleted <> 0))",
            (-1 if did is None else did, fid),
        )
        return Counts(*row) if row else Counts()

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

    def statistics(self) -> dict[str, int]:
        """Writer statistics: committed transactions and jobs (jobs > transactions
        means calls were grouped)."""
        return {"transactions": self._writer.transactions, "jobs": self._writer.jobs}


def _files_named(
    query: Callable[[str, Sequence[Any]], Iterable[Any]],
    ids: Sequence[int],
    names: Sequence[str],
) -> dict[str, FileInfo]:
    """The entries of one (folder, device) with these names, a query per page of names
    (through ``query``: a reader's or the writer's connection); absent names left out."""
    found: dict[str, FileInfo] = {}
    for chunk, marks in codec.in_chunks(map(codec.name_key, names), _PAGE):
        for row in query(
            f"SELECT {codec.FILE_COLUMNS} FROM files "
            f"WHERE folder = ? AND device = ? AND name IN ({marks})",
            (*ids, *chunk),
        ):
            fi = codec.row_to_file(row)
            found[fi.name] = fi
    return found
