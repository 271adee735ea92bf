"""Write operations, run by the writer thread inside its transaction.

Every change to a name's entries recomputes that name's global version and the local
need (``globals``) in the same transaction, so readers never see them disagree.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ..errors import UsageError
from ..protocol.fileinfo import FileInfo, FileType, LocalFileInfo
from ..rules import NEED_NONE, global_and_need, sole_holder_need
from . import codec, sqlite_schema

_RECOMPUTE_BATCH = 1000

F = TypeVar("F", bound=FileInfo)

_FILES_HEAD = f"INSERT INTO files (folder, device, {codec.FILE_COLUMNS})"
_FILES_WIDTH = 12
_FILES_UPDATE = """
ON CONFLICT (folder, device, name) DO UPDATE SET
    type = excluded.type, size = excluded.size, modified_ns = excluded.modified_ns,
    deleted = excluded.deleted, invalid = excluded.invalid, sequence = excluded.sequence,
    local_flags = excluded.local_flags, version = excluded.version, extra = excluded.extra
"""
_ROW_12 = "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

_UPSERT_FILE = f"{_FILES_HEAD} {_ROW_12} {_FILES_UPDATE} RETURNING id"

# Names this device has never had: no old blocks to forget (the rest are not inserted).
_NEW_FILES_TAIL = "ON CONFLICT (folder, device, name) DO NOTHING RETURNING id, name"

# A name no device has had in this folder, with its id chosen by the caller.
_FILES_WITH_ID_HEAD = f"INSERT INTO files (id, folder, device, {codec.FILE_COLUMNS})"

_GLOBALS_HEAD = (
    "INSERT INTO globals (folder, name, device, version, type, size, deleted, invalid, need)"
)
_GLOBALS_WIDTH = 9
_GLOBALS_UPDATE = """
ON CONFLICT (folder, name) DO UPDATE SET
    device = excluded.device, version = excluded.version, type = excluded.type,
    size = excluded.size, deleted = excluded.deleted, invalid = excluded.invalid,
    need = excluded.need
"""

# Rows per multi-row statement (``_insert_rows``); 200 rows of 12 values stay far below
# SQLite's limit on bound parameters.
_ROWS_PER_STATEMENT = 200


def _insert_rows(
    conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]], tail: str
) -> list[Any]:
    """``head VALUES (...), (...), ... tail`` for ``rows``, many rows per statement.

    The writer runs each job in a savepoint, so every statement that may change several
    rows (the count triggers make every files and globals write one) journals the pages
    it touches in a temp file first. One statement per row journals the same pages once
    per row: 64 recorded files wrote about 1.4 MB that way, one statement 70 KB. Returns
    the rows of a RETURNING clause in ``tail``, if any."""
    out: list[Any] = []
    row = "(" + ", ".join(["?"] * width) + ")"
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        values = ", ".join([row] * len(chunk))
        params = [value for r in chunk for value in r]
        out.extend(conn.execute(f"{head} VALUES {values} {tail}", params).fetchall())
    return out


class Mutations:
    """The write operations, bound to the local device; keeps an id cache that the
    writer drops whenever a job is rolled back."""

    def __init__(self, local_device: bytes) -> None:
        self.local_device = local_device
        self._folders: dict[str, int] = {}
        self._devices: dict[bytes, int] = {}

    def reset_caches(self) -> None:
        self._folders.clear()
        self._devices.clear()

    # -- ids -------------------------------------------------------------------------

    def folder_id(self, conn: sqlite3.Connection, folder: str, create: bool = True) -> int | None:
        fid = self._folders.get(folder)
        if fid is None:
            row = conn.execute("SELECT id FROM folders WHERE name = ?", (folder,)).fetchone()
            if row is None:
                if not create:
                    return None
                row = conn.execute(
                    "INSERT INTO folders (name) VALUES (?) RETURNING id", (folder,)
                ).fetchone()
            fid = self._folders[folder] = row[0]
        return fid

    def device_id(self, conn: sqlite3.Connection, device: bytes, create: bool = True) -> int | None:
        did = self._devices.get(device)
        if did is None:
            row = conn.execute("SELECT id FROM devices WHERE device = ?", (device,)).fetchone()
            if row is None:
                if not create:
                    return None
                row = conn.execute(
                    "INSERT INTO devices (device) VALUES (?) RETURNING id", (device,)
                ).fetchone()
            did = self._devices[device] = row[0]
        return did

    def _remote_ids(
        self, conn: sqlite3.Connection, folder: str, device: bytes, create: bool
    ) -> tuple[int | None, int | None]:
        if device == self.local_device:
            raise UsageError("remote index data cannot be stored for the local device")
        return self.folder_id(conn, folder, create), self.device_id(conn, device, create)

    # -- files -----------------------------------------------------------------------

    def update_local(
        self,
        conn: sqlite3.Connection,
        folder: str,
        files: Sequence[LocalFileInfo],
        applied: bool = False,
    ) -> list[LocalFileInfo]:
        fid = self.folder_id(conn, folder)
        did = self.device_id(conn, self.local_device)
        assert fid is not None and did is not None
        sequence = _max_sequence(conn, fid, did)
        stored = []
        for fi in files:
            sequence += 1
            stored.append(fi.with_(sequence=sequence))
        keyed, keys, fresh = _keyed_and_fresh(conn, fid, stored)
        fresh_keys = {key for key, _ in fresh}
        block_rows = self._insert_fresh(conn, fid, did, fresh, local=True)
        rest = [
            (key, fi, (fid, did, *codec.file_params(fi)))
            for key, fi in keyed
            if key not in fresh_keys
        ]
        ids: dict[bytes, int] = {}
        if len(keys) == len(keyed):  # one row per name: a few statements for the batch
            ids = _store_rows(conn, [params for _, _, params in rest])
        blocks_of: dict[int, list[tuple[bytes, int, int, int]]] = {}  # the last entry's
        for key, fi, params in rest:
            file_id = ids.get(key, 0)
            if not file_id:  # a name given twice: one by one, the later one last
                file_id = conn.execute(_UPSERT_FILE, params).fetchone()[0]
                conn.execute("DELETE FROM blockmap WHERE file = ?", (file_id,))
            blocks_of[file_id] = (
                [(b.hash, file_id, b.offset, b.size) for b in fi.blocks]
                if fi.type == FileType.FILE and not fi.deleted and not fi.invalid
                else []
            )
        for rows in blocks_of.values():
            block_rows.extend(rows)
        # One row per statement here: a block map row fires no trigger, so a statement
        # of one row needs no journal, and a batch's rows land on scattered pages.
        conn.executemany(
            "INSERT OR IGNORE INTO blockmap (hash, file, offset, size) VALUES (?, ?, ?, ?)",
            block_rows,
        )
        _set_max_sequence(conn, fid, did, sequence)
        self._recompute(conn, fid, keys - fresh_keys)
        if applied:
            for chunk, marks in codec.in_chunks(sorted(keys), _RECOMPUTE_BATCH):
                conn.execute(
                    f"DELETE FROM applying WHERE folder = ? AND name IN ({marks})", (fid, *chunk)
                )
        return stored

    @staticmethod
    def _insert_fresh(
        conn: sqlite3.Connection,
        fid: int,
        did: int,
        fresh: Sequence[tuple[bytes, FileInfo]],
        *,
        local: bool,
    ) -> list[tuple[bytes, int, int, int]]:
        """Names no device has had in this folder (an initial scan's, or a new peer's
        first index): their rows, global versions (the one entry, nothing to rank) and,
        for local entries, block rows, in a few statements. Returns the block rows."""
        if not fresh:
            return []
        first_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM files").fetchone()[0]
        file_rows = []
        global_rows = []
        block_rows: list[tuple[bytes, int, int, int]] = []
        for file_id, (key, fi) in enumerate(fresh, start=first_id):
            params = codec.file_params(fi)
            file_rows.append((file_id, fid, did, *params))
            ftype, deleted, invalid = int(fi.type), int(fi.deleted), int(fi.invalid)
            global_rows.append(
                (
                    fid,
                    key,
                    did,
                    params[8],  # the encoded version
                    ftype,
                    fi.size,
                    deleted,
                    invalid,
                    sole_holder_need(local, ftype, fi.deleted, fi.invalid),
                )
            )
            if local and fi.type == FileType.FILE and not fi.deleted and not fi.invalid:
                block_rows.extend((b.hash, file_id, b.offset, b.size) for b in fi.blocks)
        with sqlite_schema.without_insert_counts(conn) as lifted:
            _insert_rows(conn, _FILES_WITH_ID_HEAD, _FILES_WIDTH + 1, file_rows, "")
            _insert_rows(conn, _GLOBALS_HEAD, _GLOBALS_WIDTH, global_rows, "")
        if lifted:  # counted once per batch instead of by the triggers, row by row
            shape = [(int(fi.type), fi.deleted, fi.size) for _, fi in fresh]
            sqlite_schema.add_counts(conn, fid, did, sqlite_schema.count_delta(shape))
            valid = [s for s, (_, fi) in zip(shape, fresh, strict=True) if not fi.invalid]
            sqlite_schema.add_counts(
                conn, fid, sqlite_schema.SCOPE_GLOBAL, sqlite_schema.count_delta(valid)
            )
            needed = [s for s, row in zip(shape, global_rows, strict=True) if row[-1] is not None]
            sqlite_schema.add_counts(
                conn, fid, sqlite_schema.SCOPE_NEED, sqlite_schema.count_delta(needed)
            )
        return block_rows

    def note_applying(
        self, conn: sqlite3.Connection, folder: str, files: Sequence[LocalFileInfo]
    ) -> None:
        fid = self.folder_id(conn, folder)
        conn.executemany(
            f"INSERT OR REPLACE INTO applying (folder, {codec.FILE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(fid, *codec.file_params(fi)) for fi in files],
        )

    def clear_applying(self, conn: sqlite3.Connection, folder: str) -> None:
        fid = self.folder_id(conn, folder, create=False)
        if fid is not None:
            conn.execute("DELETE FROM applying WHERE folder = ?", (fid,))

    def update_remote(
        self, conn: sqlite3.Connection, folder: str, device: bytes, files: Sequence[FileInfo]
    ) -> None:
        fid, did = self._remote_ids(conn, folder, device, create=True)
        assert fid is not None and did is not None
        sequence = max([_max_sequence(conn, fid, did), *(fi.sequence for fi in files)])
        keyed, keys, fresh = _keyed_and_fresh(conn, fid, files)
        fresh_keys = {key for key, _ in fresh}
        self._insert_fresh(conn, fid, did, fresh, local=False)
        # Rows of one statement apply in order: a name given twice ends as the later one.
        _insert_rows(
            conn,
            _FILES_HEAD,
            _FILES_WIDTH,
            [(fid, did, *codec.file_params(fi)) for key, fi in keyed if key not in fresh_keys],
            _FILES_UPDATE,
        )
        _set_max_sequence(conn, fid, did, sequence)
        self._recompute(conn, fid, keys - fresh_keys)

    def clear_remote(self, conn: sqlite3.Connection, folder: str, device: bytes) -> None:
        """Forget a remote device's entries (its index ID stays)."""
        fid, did = self._remote_ids(conn, folder, device, create=False)
        if fid is None or did is None:
            return
        # Every name the device had, not only those it won: wins_over is not a total
        # order (a modification beats a concurrent delete), so removing a loser can
        # change which candidate sorts first.
        _touch(conn, "SELECT name FROM files WHERE folder = ? AND device = ?", (fid, did))
        conn.execute("DELETE FROM files WHERE folder = ? AND device = ?", (fid, did))
        conn.execute(
            "UPDATE folder_devices SET max_sequence = 0 WHERE folder = ? AND device = ?",
            (fid, did),
        )
        self._recompute_touched(conn, fid)

    def replace_remote(
        self, conn: sqlite3.Connection, folder: str, device: bytes, files: Sequence[FileInfo]
    ) -> None:
        self.clear_remote(conn, folder, device)
        self.update_remote(conn, folder, device, files)

    def drop_device(self, conn: sqlite3.Connection, folder: str, device: bytes) -> None:
        """Forget everything about ``device`` in ``folder``, index ID included."""
        fid = self.folder_id(conn, folder, create=False)
        did = self.device_id(conn, device, create=False)
        if fid is None or did is None:
            return
        if device == self.local_device:
            # The local need of every name changes.
            _touch(conn, "SELECT name FROM globals WHERE folder = ?", (fid,))
            conn.execute("DELETE FROM files WHERE folder = ? AND device = ?", (fid, did))
            self._recompute_touched(conn, fid)
        else:
            self.clear_remote(conn, folder, device)
        conn.execute("DELETE FROM folder_devices WHERE folder = ? AND device = ?", (fid, did))
        conn.execute("DELETE FROM counts WHERE folder = ? AND scope = ?", (fid, did))

    def reset_local(self, conn: sqlite3.Connection, folder: str) -> int:
        """Forget the local device's entries in ``folder`` and give it a new index ID;
        its sequence numbers go on from where they were. Returns the new index ID."""
        fid = self.folder_id(conn, folder, create=False)
        did = self.device_id(conn, self.local_device, create=False)
        if fid is not None and did is not None:
            _touch(conn, "SELECT name FROM files WHERE folder = ? AND device = ?", (fid, did))
            conn.execute("DELETE FROM files WHERE folder = ? AND device = ?", (fid, did))
            self._recompute_touched(conn, fid)
            self.clear_applying(conn, folder)
        index_id = 0
        while index_id == 0:
            index_id = secrets.randbits(64)
        self.set_index_id(conn, folder, self.local_device, index_id)
        return index_id

    def drop_folder(self, conn: sqlite3.Connection, folder: str) -> None:
        fid = self.folder_id(conn, folder, create=False)
        if fid is None:
            return
        # Explicit order instead of cascades: the count triggers must not recreate
        # counts rows for a folder that is going away.
        conn.execute("DELETE FROM globals WHERE folder = ?", (fid,))
        conn.execute("DELETE FROM files WHERE folder = ?", (fid,))  # cascades to blockmap
        for table in ("counts", "folder_devices"):
            conn.execute(f"DELETE FROM {table} WHERE folder = ?", (fid,))
        conn.execute("DELETE FROM folders WHERE id = ?", (fid,))
        self._folders.pop(folder, None)

    # -- index IDs -------------------------------------------------------------------

    def set_index_id(
        self, conn: sqlite3.Connection, folder: str, device: bytes, index_id: int
    ) -> None:
        fid = self.folder_id(conn, folder)
        did = self.device_id(conn, device)
        conn.execute(
            "INSERT INTO folder_devices (folder, device, index_id) VALUES (?, ?, ?) "
            "ON CONFLICT (folder, device) DO UPDATE SET index_id = excluded.index_id",
            (fid, did, codec.to_signed(index_id)),
        )

    def ensure_local_index_id(self, conn: sqlite3.Connection, folder: str) -> int:
        fid = self.folder_id(conn, folder)
        did = self.device_id(conn, self.local_device)
        row = conn.execute(
            "SELECT index_id FROM folder_devices WHERE folder = ? AND device = ?", (fid, did)
        ).fetchone()
        if row is not None and row[0] != 0:
            return codec.to_unsigned(row[0])
        index_id = 0
        while index_id == 0:
            index_id = secrets.randbits(64)
        self.set_index_id(conn, folder, self.local_device, index_id)
        return index_id

    # -- global versions -------------------------------------------------------------

    def _recompute(self, conn: sqlite3.Connection, fid: int, keys: Iterable[bytes]) -> None:
        local_did = self.device_id(conn, self.local_device)
        for chunk, marks in codec.in_chunks(sorted(keys), _RECOMPUTE_BATCH):
            holders: dict[bytes, list[Any]] = {key: [] for key in chunk}
            # One row per device and name: bounded. In device ID order, the same on every
            # device, so an ordering rule that is not a total order still picks the same
            # winner.
            for name, *row in conn.execute(
                f"SELECT files.name, {codec.RANK_COLUMNS} FROM files "
                "JOIN devices d ON d.id = files.device "
                f"WHERE files.folder = ? AND files.name IN ({marks}) ORDER BY files.name, d.device",
                (fid, *chunk),
            ):
                holders[name].append(row)
            gone = [(fid, key) for key, rows in holders.items() if not rows]
            if gone:
                conn.executemany("DELETE FROM globals WHERE folder = ? AND name = ?", gone)
            _insert_rows(
                conn,
                _GLOBALS_HEAD,
                _GLOBALS_WIDTH,
                [
                    _global_row(fid, key, *_pick(key, rows, local_did))
                    for key, rows in holders.items()
                    if rows
                ],
                _GLOBALS_UPDATE,
            )

    def _recompute_touched(self, conn: sqlite3.Connection, fid: int) -> None:
        last = b""
        while True:
            keys = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM temp.touched WHERE name > ? ORDER BY name LIMIT ?",
                    (last, _RECOMPUTE_BATCH),
                )
            ]
            if not keys:
                break
            self._recompute(conn, fid, keys)
            last = keys[-1]
        conn.execute("DELETE FROM temp.touched")


def _touch(conn: sqlite3.Connection, select: str, params: tuple[object, ...]) -> None:
    """Collect names to recompute in a temp table (on disk, not in Python memory)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS touched (name BLOB PRIMARY KEY) WITHOUT ROWID")
    conn.execute("DELETE FROM temp.touched")
    conn.execute(f"INSERT OR IGNORE INTO temp.touched (name) {select}", params)


def _pick(key: bytes, rows: list[Any], local_did: int | None) -> tuple[Sequence[Any], int | None]:
    """The global version among one name's holders (files rows selected as RANK_COLUMNS,
    in device ID order) and the local need level that goes with it."""
    if len(rows) == 1:  # the usual case: one holder is the global, nothing to rank
        device, ftype, _, _, deleted, invalid, _ = rows[0]
        return rows[0], sole_holder_need(device == local_did, ftype, deleted, invalid)
    # The next most usual: every holder has the same version (one side pulled what the
    # other has, or echoes it back). Whichever wins the ranking, the local copy is
    # equivalent to it, so it is the global and nothing is needed.
    first_version, first_invalid = rows[0][6], rows[0][5]
    if all(row[6] == first_version and row[5] == first_invalid for row in rows):
        for row in rows:
            if row[0] == local_did:
                return row, NEED_NONE
    return _pick_ranked(key, rows, local_did)


def _pick_ranked(
    key: bytes, rows: list[Any], local_did: int | None
) -> tuple[Sequence[Any], int | None]:
    """``_pick`` by the full rule (``rules.global_and_need``), without its shortcuts."""
    candidates = [codec.row_to_rank_file(key, row) for row in rows]
    local_index = next((i for i, row in enumerate(rows) if row[0] == local_did), None)
    index, need = global_and_need(candidates, local_index)
    return rows[index], need


def _global_row(fid: int, key: bytes, row: Sequence[Any], need: int | None) -> tuple[Any, ...]:
    """The globals row making the files row ``row`` (RANK_COLUMNS) the global of ``key``."""
    device, ftype, size, _mtime, deleted, invalid, version = row
    return (fid, key, device, version, ftype, size, deleted, invalid, need)


def _store_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> dict[bytes, int]:
    """Insert or update files rows (one per name) in a few statements; forget the old
    blocks of the updated ones. Returns each name's row id."""
    ids = {
        name: file_id
        for file_id, name in _insert_rows(conn, _FILES_HEAD, _FILES_WIDTH, rows, _NEW_FILES_TAIL)
    }
    known = [row for row in rows if row[2] not in ids]  # row[2]: the name key
    updated = _insert_rows(
        conn, _FILES_HEAD, _FILES_WIDTH, known, _FILES_UPDATE + " RETURNING id, name"
    )
    for chunk, marks in codec.in_chunks((file_id for file_id, _ in updated), _RECOMPUTE_BATCH):
        conn.execute(f"DELETE FROM blockmap WHERE file IN ({marks})", chunk)
    ids.update((name, file_id) for file_id, name in updated)
    return ids


def _keyed_and_fresh(
    conn: sqlite3.Connection, fid: int, files: Sequence[F]
) -> tuple[list[tuple[bytes, F]], set[bytes], list[tuple[bytes, F]]]:
    """Each file with its name key, the set of keys, and the files whose names no device
    has had in folder ``fid`` (for ``_insert_fresh``). A batch naming one file twice has
    none: it goes one by one."""
    keyed = [(codec.name_key(fi.name), fi) for fi in files]
    keys = {key for key, _ in keyed}
    if len(keys) != len(keyed):
        return keyed, keys, []
    known = _known_names(conn, fid, keys)
    return keyed, keys, [(key, fi) for key, fi in keyed if key not in known]


def _known_names(conn: sqlite3.Connection, fid: int, keys: Iterable[bytes]) -> set[bytes]:
    """Which of ``keys`` any device has an entry (or a global row) for in folder ``fid``."""
    known: set[bytes] = set()
    for chunk, marks in codec.in_chunks(keys, _RECOMPUTE_BATCH):
        known.update(
            row[0]
            for row in conn.execute(
                f"SELECT name FROM files WHERE folder = ? AND name IN ({marks}) UNION "
                f"SELECT name FROM globals WHERE folder = ? AND name IN ({marks})",
                (fid, *chunk, fid, *chunk),
            )
        )
    return known


def _max_sequence(conn: sqlite3.Connection, fid: int, did: int) -> int:
    row = conn.execute(
        "SELECT max_sequence FROM folder_devices WHERE folder = ? AND device = ?", (fid, did)
    ).fetchone()
    return row[0] if row else 0


def _set_max_sequence(conn: sqlite3.Connection, fid: int, did: int, sequence: int) -> None:
    conn.execute(
        "INSERT INTO folder_devices (folder, device, max_sequence) VALUES (?, ?, ?) "
        "ON CONFLICT (folder, device) DO UPDATE SET max_sequence = excluded.max_sequence",
        (fid, did, sequence),
    )
