"""IndexStore: the SQLite index of every device's FileInfos per folder.

Synchronous and thread-safe; the daemon calls it through ``trio.to_thread.run_sync`` with
a CapacityLimiter. Writes go to the one writer thread (writer.py), which commits calls
that queue up together in one transaction; what a write changes is in writes.py. Reads
are inherited: a device's entries from reads.py, the global view and the need from
global_reads.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from ..errors import IndexError_
from ..protocol.fileinfo import FileInfo, LocalFileInfo
from . import codec, sqlite_schema
from .global_reads import GlobalReads
from .reads import local_files_named
from .sqlite_schema import Migration
from .writer import Writer
from .writes import Mutations

T = TypeVar("T")

# Told of every stored local change: (folder, [(before or None, after as stored)], applied).
LocalChangeObserver = Callable[[str, list[tuple[LocalFileInfo | None, LocalFileInfo]], bool], None]


class IndexStore(GlobalReads):
    """See the module docstring. Create with ``IndexStore.open``."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        local_device: bytes,
        on_local_change: LocalChangeObserver | None = None,
    ) -> None:
        super().__init__(path, local_device)
        self._on_local_change = on_local_change
        self._mutations = Mutations(local_device)
        self._writer = Writer(conn)
        self._writer.on_rollback(self._mutations.reset_caches)

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
        self, folder: str, files: Sequence[LocalFileInfo], *, applied: bool = False
    ) -> list[LocalFileInfo]:
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

        def job(c: sqlite3.Connection) -> tuple[dict[str, LocalFileInfo], list[LocalFileInfo]]:
            before = self._local_rows(c, folder, [f.name for f in files])
            return before, self._mutations.update_local(c, folder, files, applied)

        before, stored = self._write(job)
        observer(folder, [(before.get(f.name), f) for f in stored], applied)
        return stored

    def _local_rows(
        self, conn: sqlite3.Connection, folder: str, names: Sequence[str]
    ) -> dict[str, LocalFileInfo]:
        """``get_local_many`` on the writer's connection, inside its transaction."""
        row = conn.execute(
            "SELECT f.id, d.id FROM folders f, devices d WHERE f.name = ? AND d.device = ?",
            (folder, self.local_device),
        ).fetchone()
        if row is None:
            return {}
        return local_files_named(lambda sql, params: conn.execute(sql, params), row, names)

    def note_applying(self, folder: str, files: Sequence[LocalFileInfo]) -> None:
        """Remember the records of files about to be renamed into place, before the renames.
        A daemon killed after a rename but before ``update_local(applied=True)`` finds them
        here at its next start (``applying``) and adopts each file that is still exactly
        what was renamed in (same inode, size and mtime), instead of taking it for a local
        edit."""
        self.note_applying_soon(folder, files).result()

    def note_applying_soon(self, folder: str, files: Sequence[LocalFileInfo]) -> Future[None]:
        """``note_applying`` without waiting; the renames must wait for the future."""
        files = list(files)
        if not files:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._writer.submit(lambda c: self._mutations.note_applying(c, folder, files))

    def applying(self, folder: str) -> list[LocalFileInfo]:
        """The records noted by ``note_applying`` and not yet stored."""
        fid = self._folder_id(folder)
        if fid is None:
            return []
        rows = self._all(
            f"SELECT {codec.FILE_COLUMNS} FROM applying WHERE folder = ? ORDER BY name", (fid,)
        )
        return [codec.row_to_local(row) for row in rows]

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

    def statistics(self) -> dict[str, int]:
        """Writer statistics: committed transactions and jobs (jobs > transactions
        means calls were grouped)."""
        return {"transactions": self._writer.transactions, "jobs": self._writer.jobs}
