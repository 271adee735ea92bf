"""The global view of a folder and what this device needs of it: the global version of
each name, the devices that hold it, and the need in pull order (the need and global
columns are kept by writes.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

from ..protocol.fileinfo import FileInfo
from . import codec
from .reads import F_COLUMNS, PAGE, Counts, IndexReads
from .sqlite_schema import SCOPE_GLOBAL, SCOPE_NEED


@dataclass
class NeedCursor:
    """Where a walk of ``IndexStore.iter_need`` stands: the pull phase and name key of the
    last entry it yielded."""

    need: int = 0
    name: bytes = b""


class GlobalReads(IndexReads):
    """The reads of the global view, on top of a device's (see the module docstring)."""

    def get_global(self, folder: str, name: str) -> FileInfo | None:
        """The global version of ``name`` (may be invalid if no device has a valid one)."""
        fid = self._folder_id(folder)
        if fid is None:
            return None
        row = self._one(
            f"SELECT {F_COLUMNS} FROM globals g JOIN files f "
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
        for chunk, marks in codec.in_chunks(map(codec.name_key, holders), PAGE):
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

    def iter_global(self, folder: str, prefix: str = "") -> Iterator[FileInfo]:
        """The global version of every name (``prefix`` as in iter_local), in walk order;
        includes deleted and invalid globals."""
        fid = self._folder_id(folder)
        if fid is None:
            return
        yield from self._iter_tree(
            f"SELECT {F_COLUMNS} FROM globals g JOIN files f ON f.folder = g.folder "
            "AND f.device = g.device AND f.name = g.name WHERE g.folder = ?",
            "g.name",
            (fid,),
            prefix,
            codec.row_to_file,
        )

    def iter_need(
        self, folder: str, batch_size: int = PAGE, cursor: NeedCursor | None = None
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
            f"SELECT g.need, {F_COLUMNS} FROM globals g JOIN files f ON f.folder = g.folder "
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
