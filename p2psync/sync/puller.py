"""The puller: the only code that writes user files.

For each needed item it follows one path — check, build, version, apply, record:

1. *check*: what is on disk must still be what the index recorded at the last scan;
   otherwise the user changed it since and we rescan instead of clobbering it;
2. *build* (files): a temp file next to the target (``.p2psync.<name>.tmp``) filled from
   blocks already on this device (a previous partial temp, the old file, any local file
   with the same block hash — renames and copies cost no network), then from peers that
   have the needed version, several requests in flight, spread across peers; every block's
   SHA-256 is verified before it is written; fsync;
3. *version*: the old file goes to the versioner, or to a conflict copy if the change we
   are applying is concurrent with it;
4. *apply*: atomic rename, mtime, permissions;
5. *record*: the new state (with its on-disk inode) goes into the index.

Blocking work runs in worker threads; fetching is async. Everything a step needs is
passed in, so the folder loop and tests drive it the same way.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio

from ..errors import UnsafePathError
from ..fs.base import FileStat, FileSystem, WriteHandle
from ..fs.internal import is_internal, temp_name
from ..index.store import IndexStore
from ..protocol.model import BlockInfo, FileInfo, FileType
from ..protocol.ordering import is_conflict
from ..scanner.scan import FLAG_NOT_SYNCED_HERE
from .block_io import BlockReaders, BlockWrites, read_verified
from .local_renames import apply_renames
from .plan import conflict_copies_to_remove, conflict_copy_name, is_conflict_copy, metadata_matches
from .progress import PullProgress
from .versioner import Versioner

log = logging.getLogger("p2psync.sync.puller")
T = TypeVar("T")

# Block requests one file keeps in flight: 16 MiB of data, but at least 16 requests.
BYTES_IN_FLIGHT_PER_FILE = 16 * 1024 * 1024
MIN_REQUESTS_IN_FLIGHT_PER_FILE = 16
MIN_FREE_BYTES = 16 * 1024 * 1024  # never fill a disk to the last byte
FILL_THREADS = 2  # threads copying one big file's local blocks
FILL_SPLIT_MIN_BLOCKS = 256  # files with fewer blocks are copied on one thread
PREALLOCATE_MIN = 4 * 1024 * 1024  # temp files this large get their space reserved first,
PREALLOCATE_ROOM = 4  # when the disk has room for this many of them
BYPASS_CACHE_MIN = 16 * 1024 * 1024  # temp files this large are written around the page cache
DISK_FULL = "insufficient disk space"
SPACE_WAIT_POLL = 0.5  # a file waiting for space held by others looks again at least this often


class BlockSource(Protocol):
    """A connected peer that can serve blocks (net.peer.PeerConnection)."""

    async def request(
        self, folder: str, name: str, offset: int, size: int, hash: bytes
    ) -> bytes: ...

    async def request_many(
        self, folder: str, wanted: Sequence[tuple[str, int, int, bytes]]
    ) -> Sequence[bytes | Exception]:
        """Several blocks, each (name, offset, size, hash), with one wait; each result is
        the data or the exception saying why it is missing."""
        ...


SourcesForMany = Callable[[list[str]], Awaitable[dict[str, Sequence[BlockSource]]]]


class ItemSkipped(Exception):
    """The item cannot be applied now; ``reason`` says why (shown to the user).

    ``rescan``: the disk changed under us, rescan the name. ``retry_soon``: another item of
    the same pull (e.g. deleting a directory's contents) may unblock it. ``kept``: the item
    can never be applied here and is kept as "not synced here" (``Puller.keep_not_synced``,
    called by the pull round): not an error, not retried until a peer sends a new version.
    """

    def __init__(
        self, reason: str, *, rescan: bool = False, retry_soon: bool = False, kept: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rescan = rescan
        self.retry_soon = retry_soon
        self.kept = kept


INTERNAL_NAME = "one of p2psync's own names (in any case); never synced"


class WaitForSpace(Exception):
    """The file fits on the disk alone, but not next to the files being written now: it
    waits for them (``Puller.wait_for_space``) instead of failing."""


@dataclass
class PullStats:
    blocks_local: int = 0
    blocks_network: int = 0
    bytes_network: int = 0
    items_done: int = 0
    conflicts: int = 0
    renames: int = 0


def short_str_of(short_id: int) -> str:
    """The 7-character form of a device from its short ID (the first 7 base32 chars of
    the device ID only depend on its first 35 bits)."""
    import base64

    return base64.b32encode(short_id.to_bytes(8, "big")).decode("ascii")[:7]


class Puller:
    def __init__(
        self,
        *,
        folder: str,
        fs: FileSystem,
        index: IndexStore,
        versioner: Versioner,
        limiter: trio.CapacityLimiter,
        sources_for: Callable[[str], Awaitable[Sequence[BlockSource]]],
        sources_for_many: SourcesForMany | None = None,
        ignore_permissions: bool = False,
        max_conflicts: int = 10,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
        defer_records: bool = False,
    ) -> None:
        self.folder = folder
        self.fs = fs
        self.index = index
        self.versioner = versioner
        self.limiter = limiter
        self.sources_for = sources_for
        self.sources_for_many = sources_for_many
        self.ignore_permissions = ignore_permissions
        self.max_conflicts = max_conflicts
        self.clock = clock
        self.stats = PullStats()
        self.progress = PullProgress()
        # Names the puller created that the scanner must pick up (conflict copies).
        # Appended from worker threads; the folder loop drains it.
        self.created: list[str] = []
        # (name, conflict copy, short ID of the device whose change won), for the event.
        self.conflicts_made: list[tuple[str, str, int]] = []
        self._dirty_dirs: set[str] = set()
        # With defer_records the index is updated in batches (flush) instead of
        # one transaction per item.
        self.defer_records = defer_records
        self._pending_records: list[FileInfo] = []
        self._pending_lock = threading.Lock()
        self._flushed_sequence = 0
        self._recent_blocks: dict[bytes, tuple[str, int, int]] = {}
        # Parent directories checked during this page (saves a path walk per file).
        self._known_dirs: set[str] = set()
        # Batches of small files write and flush one at a time (small_files.py).
        self.write_gate = threading.Lock()
        # Bytes set aside for files being written now: a file's free-space check counts
        # them as used, so parallel files cannot together eat into the reserve.
        self._claims_lock = threading.Lock()
        self._claimed = 0
        self._claims_released = trio.Event()

    async def in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # ---- free space ------------------------------------------------------------------
    def claim_space(self, need: int) -> int:
        """Set ``need`` bytes aside for a file about to be written, keeping MIN_FREE_BYTES
        free next to every file in flight; returns ``need`` (for ``release_space``).
        Raises WaitForSpace if it only fits once the others are done, and
        ItemSkipped(DISK_FULL) if it does not fit at all. Call from a worker thread."""
        free = self.fs.free_space()
        with self._claims_lock:
            if free - self._claimed >= need + MIN_FREE_BYTES:
                self._claimed += need
                return need
            others = self._claimed
        if others and free >= need + MIN_FREE_BYTES:
            raise WaitForSpace
        raise ItemSkipped(DISK_FULL)

    def release_space(self, claimed: int) -> None:
        """Give back a claim (the file is written, or failed). Call from the trio thread."""
        if not claimed:
            return
        with self._claims_lock:
            self._claimed -= claimed
        self._claims_released.set()
        self._claims_released = trio.Event()

    async def wait_for_space(self) -> None:
        """Until a claim is given back (or SPACE_WAIT_POLL passed: look again anyway)."""
        with trio.move_on_after(SPACE_WAIT_POLL):
            await self._claims_released.wait()

    # ---- entry point -----------------------------------------------------------------
    async def pull_item(self, fi: FileInfo) -> None:
        """Make the local copy of ``fi.name`` match ``fi`` (the global version), or raise
        ItemSkipped saying why not."""
        if is_internal(fi.name):
            raise ItemSkipped(INTERNAL_NAME, kept=True)
        try:
            if fi.deleted:
                await self.in_thread(self._with_local, self._apply_delete, fi)
            elif fi.type == FileType.DIRECTORY:
                await self.in_thread(self._with_local, self._apply_directory, fi)
            elif fi.type == FileType.SYMLINK:
                await self.in_thread(self._with_local, self._apply_symlink, fi)
            else:
                await self._pull_file(fi)
        except (OSError, UnsafePathError) as exc:
            raise skipped_for(exc, fi.name) from exc
        self.stats.items_done += 1

    def _with_local(self, apply: Callable[[FileInfo, FileInfo | None], None], fi: FileInfo) -> None:
        apply(fi, self.index.get_local(self.folder, fi.name))

    def flush(self) -> int:
        """Make what was applied durable, then record it: fsync the directories renames
        went into (one fsync per directory, not per file), then write the deferred records
        in one transaction. Returns the highest new local sequence (0 if nothing was
        pending); ``take_flushed_sequence`` also sees it. Call from a worker thread. The
        folder flushes before any scan can run, so the scanner always sees what the
        puller wrote as already known; batches flush as soon as they are applied (a
        daemon killed before that adopts them at its next start, see ``adopt_applied``)."""
        return self.store_applied(self.sync_applied())

    def sync_applied(self) -> list[FileInfo]:
        """``flush``'s first half: take the pending records and fsync the directories
        their renames went into. Returns the records for ``store_applied``."""
        with self._pending_lock:  # records and their directories, as of one moment
            batch, self._pending_records = self._pending_records, []
            dirs, self._dirty_dirs = self._dirty_dirs, set()
            self._recent_blocks = {}
            self._known_dirs = set()
        for d, exc in self.fs.fsync_dirs(sorted(dirs)):  # one that went away is skipped
            log.warning("could not make renames into %r durable: %s", d, exc)
        return batch

    def store_applied(self, batch: list[FileInfo]) -> int:
        """``flush``'s second half: write ``batch`` in one transaction. A batch of small
        files does this after leaving the write gate, so the next batch's file creations
        need not wait for the index."""
        if not batch:
            return 0
        stored = self.index.update_local(self.folder, batch, applied=True)
        sequence = max(f.sequence for f in stored)
        with self._pending_lock:
            self._flushed_sequence = max(self._flushed_sequence, sequence)
        return sequence

    def flush_gated(self) -> int:
        """``flush`` outside a batch's write step (see write_gate)."""
        with self.write_gate:
            return self.flush()

    def adopt_applied(self) -> int:
        """At start: store the records of files an earlier run renamed into place but was
        killed before recording (``IndexStore.note_applying``), for each file still exactly
        as renamed in (and each rename source still gone); forget the rest. Returns how
        many were adopted. Call from a worker thread before the first scan."""
        adopted = []
        for noted in self.index.applying(self.folder):
            try:  # the never-clobber check against the noted record
                self.check_unchanged(noted.name, noted)
            except ItemSkipped:
                continue
            adopted.append(noted)
        if adopted:
            self.index.update_local(self.folder, adopted, applied=True)
        self.index.clear_applying(self.folder)
        return len(adopted)

    def take_flushed_sequence(self) -> int:
        """The highest sequence flushed since the last call (0 if none)."""
        with self._pending_lock:
            sequence, self._flushed_sequence = self._flushed_sequence, 0
        return sequence

    def mark_dirty(self, *dirs: str) -> None:
        with self._pending_lock:
            self._dirty_dirs.update(dirs)

    # ---- the never-clobber check ---------------------------------------------------
    def stat_or_none(self, name: str) -> FileStat | None:
        try:
            return self.fs.lstat(name)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def check_unchanged(self, name: str, cur: FileInfo | None) -> FileStat | None:
        """Raise ItemSkipped(rescan) unless the disk still holds what the index recorded."""
        st = self.stat_or_none(name)
        if cur is None or cur.deleted or cur.local_flags & FLAG_NOT_SYNCED_HERE:
            # (a kept "not synced here" entry was never on disk: like no entry at all)
            if st is not None:
                self._check_case_twin(name)
                raise ItemSkipped("an unscanned local item is in the way; rescanning", rescan=True)
            return None
        if st is None:
            raise ItemSkipped("deleted locally since the last scan; rescanning", rescan=True)
        if st.type != cur.type:
            raise ItemSkipped("changed type locally since the last scan; rescanning", rescan=True)
        if cur.type == FileType.FILE and not metadata_matches(
            cur,
            size=st.size,
            mtime_ns=st.mtime_ns,
            inode=st.inode,
            permissions=st.permissions,
            ignore_perms=self.ignore_permissions or cur.no_permissions,
        ):
            raise ItemSkipped("modified locally since the last scan; rescanning", rescan=True)
        if cur.type == FileType.SYMLINK and st.symlink_target != cur.symlink_target:
            raise ItemSkipped(
                "symlink changed locally since the last scan; rescanning", rescan=True
            )
        return st

    def _check_case_twin(self, name: str) -> None:
        """On a case-insensitive filesystem, ``name`` may find another spelling's file
        (``foo.txt`` for a peer's ``Foo.txt``): that is a conflict to show and retry later
        with backoff, not an unscanned item (a rescan finds nothing new: a busy loop)."""
        if not self.fs.is_case_insensitive():
            return
        try:
            real = self.fs.real_name(name)
        except (OSError, UnsafePathError):
            return
        if real != name:
            raise ItemSkipped(
                f"case conflict: {real!r} exists here, and this filesystem does not tell "
                "names apart by case"
            )

    def count_blocks(self, *, local: int = 0, network: int = 0, network_bytes: int = 0) -> None:
        """Add to the block statistics (from any thread)."""
        with self._pending_lock:
            self.stats.blocks_local += local
            self.stats.blocks_network += network
            self.stats.bytes_network += network_bytes

    # ---- record --------------------------------------------------------------------
    def as_recorded(self, fi: FileInfo, st: FileStat | None) -> FileInfo:
        """The local record of ``fi`` once applied, with ``st`` the stat of what was put in
        place (a rename keeps the temp file's inode, mode and mtime)."""
        return fi.with_(
            sequence=0,
            local_flags=0,
            inode=st.inode if st else 0,
            modified_ns=fi.modified_ns
            if (st is None or fi.is_directory or fi.is_symlink)
            else st.mtime_ns,
            permissions=st.permissions
            if (st and not fi.is_symlink and not self.ignore_permissions)
            else fi.permissions,
        )

    def note_applying(self, applying: Sequence[tuple[FileInfo, FileStat | None]]) -> None:
        """Before renames put these into place: note the records they will leave
        (``IndexStore.note_applying``; adopted at the next start if a kill comes first)."""
        self.note_applying_soon(applying).result()

    def note_applying_soon(
        self, applying: Sequence[tuple[FileInfo, FileStat | None]]
    ) -> Future[None]:
        """``note_applying`` without waiting: the renames must wait for the future."""
        return self.index.note_applying_soon(
            self.folder, [self.as_recorded(fi, st) for fi, st in applying]
        )

    def record(self, fi: FileInfo, st: FileStat | None) -> None:
        stored = self.as_recorded(fi, st)
        if self.defer_records:
            with self._pending_lock:
                self._pending_records.append(stored)
                # Blocks written but not yet in the index's block map: still reusable.
                if stored.is_file and not stored.deleted:
                    self._remember_locked(stored)
        else:
            self.index.update_local(self.folder, [stored], applied=True)

    def keep_not_synced(self, fi: FileInfo) -> None:
        """Keep ``fi`` (refused for good: ``ItemSkipped.kept``) as a local invalid entry
        with its version, the way an ignored file is kept: it is no longer needed and
        peers see this device does not hold it; a new version from a peer is needed (and
        refused) again. Nothing on disk is touched. Recorded with the next ``flush`` (the
        pull round ends with one)."""
        kept = fi.with_(sequence=0, invalid=True, local_flags=FLAG_NOT_SYNCED_HERE, inode=0)
        with self._pending_lock:
            self._pending_records.append(kept)

    def make_parent(self, name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent and parent not in self._known_dirs:
            st = self.stat_or_none(parent)
            if st is None:
                self.fs.makedirs(parent)
            elif st.type != FileType.DIRECTORY:
                raise ItemSkipped(f"parent {parent!r} is not a directory here yet")
            self._known_dirs.add(parent)

    # ---- versioning or conflict ----------------------------------------------------
    def _move_old_aside(self, fi: FileInfo, cur: FileInfo | None) -> None:
        """Hand the current file to the versioner, or keep it as a conflict copy when
        ``fi`` is concurrent with it.

        The copy is named after the device whose content it holds (``cur.modified_by``),
        not the winner as Syncthing does: when several devices lose to the same winner in
        the same second, their copies must not share a name, or one would silently replace
        another. For the same reason a losing conflict copy is itself kept, not dropped.
        """
        if cur is None or cur.deleted or cur.type != FileType.FILE:
            return
        if is_conflict(cur, fi):
            if self.max_conflicts == 0:
                self.versioner.archive(fi.name)
                return
            copy = self._unused_name(
                conflict_copy_name(fi.name, self.clock(), short_str_of(cur.modified_by))
            )
            self.fs.rename(fi.name, copy)
            self.created.append(copy)
            self.conflicts_made.append((fi.name, copy, fi.modified_by))
            self.stats.conflicts += 1
            log.warning(
                "conflict on %s/%s: kept the local version as %s", self.folder, fi.name, copy
            )
            if not is_conflict_copy(fi.name):
                self._prune_conflicts(fi.name)
            return
        self.versioner.archive(fi.name)

    def _unused_name(self, name: str) -> str:
        """``name``, or ``name`` with ``-2``, ``-3``… before the extension if it exists."""
        if self.stat_or_none(name) is None:
            return name
        from .plan import split_extension

        parent, sep, base = name.rpartition("/")
        stem, ext = split_extension(base)
        for n in range(2, 1000):
            candidate = f"{parent}{sep}{stem}-{n}{ext}"
            if self.stat_or_none(candidate) is None:
                return candidate
        raise ItemSkipped("too many conflict copies with the same name")

    def _prune_conflicts(self, name: str) -> None:
        if self.max_conflicts < 0:
            return
        parent = name.rpartition("/")[0]
        names = [f"{parent}/{e.name}" if parent else e.name for e in self.fs.scandir(parent)]
        for old in conflict_copies_to_remove(name, names, self.max_conflicts):
            self.versioner.archive(old)
            try:
                self.fs.remove(old)
            except FileNotFoundError:
                pass

    # ---- renames ---------------------------------------------------------------------
    async def rename_into(self, fi: FileInfo, gone: FileInfo) -> bool:
        """Apply "``gone`` deleted, ``fi`` created with the same content" as a local rename.

        Returns False (nothing touched) when that is not safe: the source changed since
        the scan, its content differs, or something already occupies the target. The
        caller then pulls ``fi`` the normal way (which still copies blocks locally).
        """
        (done,) = await self.rename_many([(fi, gone)])
        return done

    async def rename_many(self, pairs: Sequence[tuple[FileInfo, FileInfo]]) -> list[bool]:
        """``rename_into`` for many (new, gone) pairs in one thread hop; whether each was
        applied (``local_renames.apply_renames``)."""
        return await self.in_thread(apply_renames, self, pairs)

    def remember_blocks(self, fi: FileInfo) -> None:
        """``fi``'s blocks are at its name now, though the block map does not know yet."""
        with self._pending_lock:
            self._remember_locked(fi)

    def _remember_locked(self, fi: FileInfo) -> None:
        if len(self._recent_blocks) < 100_000:  # bounded: the block map catches up at flush
            for b in fi.blocks:
                self._recent_blocks[b.hash] = (fi.name, b.offset, b.size)

    # ---- deletes ---------------------------------------------------------------------
    def _apply_delete(self, fi: FileInfo, cur: FileInfo | None) -> None:
        st = self.check_unchanged(fi.name, cur)
        if st is not None:
            if st.type == FileType.DIRECTORY:
                try:
                    self.fs.rmdir(fi.name)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise ItemSkipped(
                            "directory not empty (holds unsynced or ignored items)"
                        ) from exc
                    raise
            elif st.type == FileType.FILE:
                self.versioner.archive(fi.name)
                try:
                    self.fs.remove(fi.name)
                except FileNotFoundError:
                    pass  # the versioner moved it away
            else:
                self.fs.remove(fi.name)
            parent = fi.name.rpartition("/")[0]
            self.fs.fsync_dir(parent)
        self.record(fi, None)

    # ---- directories ---------------------------------------------------------------
    def _apply_directory(self, fi: FileInfo, cur: FileInfo | None) -> None:
        # A directory not in the index yet (the parent of files pulled before its own
        # entry arrived, or the user's) simply becomes this entry: it holds no data of its
        # own, and a rescan would give it a local version of its own mode instead.
        st = self.stat_or_none(fi.name) if cur is None else None
        if cur is not None or (st is not None and st.type != FileType.DIRECTORY):
            st = self.check_unchanged(fi.name, cur)
        if st is not None and st.type != FileType.DIRECTORY:
            # a file or symlink becomes a directory
            if st.type == FileType.FILE:
                self._move_old_aside(fi, cur)
            if self.stat_or_none(fi.name) is not None:
                self.fs.remove(fi.name)
            st = None
        self.make_parent(fi.name)
        if st is None:
            self.fs.mkdir(
                fi.name, 0o755 if self.ignore_permissions else (fi.permissions & 0o777) or 0o755
            )
        if not self.ignore_permissions and not fi.no_permissions:
            self.fs.chmod(fi.name, (fi.permissions & 0o777) or 0o755)
        self.record(fi, self.fs.lstat(fi.name))

    def remove_replaced_directory(self, name: str) -> None:
        """A directory (unchanged since the scan) becomes a file or symlink: remove it once
        its contents have been deleted by the same pull."""
        try:
            self.fs.rmdir(name)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise ItemSkipped(
                    "a directory is in the way; waiting for its contents to be deleted",
                    retry_soon=True,
                ) from exc
            raise
        self.fs.fsync_dir(name.rpartition("/")[0])

    # ---- symlinks --------------------------------------------------------------------
    def _apply_symlink(self, fi: FileInfo, cur: FileInfo | None) -> None:
        st = self.check_unchanged(fi.name, cur)
        self.make_parent(fi.name)
        tmp = temp_name(fi.name)
        if self.stat_or_none(tmp) is not None:
            self.fs.remove(tmp)
        self.fs.symlink(fi.symlink_target, tmp)
        if st is not None:
            if st.type == FileType.DIRECTORY:
                try:
                    self.remove_replaced_directory(fi.name)
                except ItemSkipped:
                    self.fs.remove(tmp)
                    raise
            else:
                self._move_old_aside(fi, cur)
        self.fs.rename(tmp, fi.name)
        try:
            self.fs.set_mtime(fi.name, fi.modified_ns)
        except OSError:
            pass
        self.record(fi, self.fs.lstat(fi.name))

    # ---- files -----------------------------------------------------------------------
    async def _pull_file(self, fi: FileInfo) -> None:
        self.progress.begin(fi.name, fi.size)
        applied = False
        try:
            while True:
                try:
                    prepared = await self.in_thread(self._prepare_file, fi)
                    break
                except WaitForSpace:
                    await self.wait_for_space()
            if prepared is None:
                applied = True
                return  # metadata-only change, already applied
            cur, tmp, handle, missing, claimed = prepared
            try:
                if missing:
                    await self._fetch(handle, fi, missing)
                await self.in_thread(self._finish_file, fi, cur, tmp, handle)
                applied = True
            except BaseException:
                await self.in_thread(handle.close)
                raise
            finally:
                self.release_space(claimed)
        finally:
            self.progress.end(fi.name, applied=applied)

    def _prepare_file(
        self, fi: FileInfo
    ) -> tuple[FileInfo | None, str, WriteHandle, list[BlockInfo], int] | None:
        """Check, then build as much of the temp file as local blocks allow (one thread hop)."""
        checked = self.check_file(fi)
        if checked is None:
            return None  # only metadata changed, now applied
        cur, st = checked
        if st is not None and st.type == FileType.DIRECTORY:
            self.remove_replaced_directory(fi.name)
            cur = None
        tmp = temp_name(fi.name)
        partial = self.stat_or_none(tmp)  # an earlier attempt's temp file holds its space
        held = partial.size if partial is not None and partial.type == FileType.FILE else 0
        claimed = self.claim_space(max(0, fi.size - held))
        try:
            self.make_parent(fi.name)
            handle = self.open_temp(tmp)
        except BaseException:
            with self._claims_lock:  # a waiter looks again within SPACE_WAIT_POLL
                self._claimed -= claimed
            raise
        try:
            if fi.size >= BYPASS_CACHE_MIN:
                handle.bypass_cache()  # see fs/direct_io.py; seal() sets the exact size
            missing = self._fill_locally(handle, fi, cur)
            # Preallocating is faster for big files, but near a full disk it would let the
            # first of several parallel files claim space the others could have shared.
            free = self.fs.free_space()
            if fi.size >= PREALLOCATE_MIN and free > PREALLOCATE_ROOM * fi.size + MIN_FREE_BYTES:
                self._reserve(handle, fi.size)
        except BaseException:
            handle.close()
            with self._claims_lock:
                self._claimed -= claimed
            raise
        return cur, tmp, handle, missing, claimed

    @staticmethod
    def _reserve(handle: WriteHandle, size: int) -> None:
        """The whole file's space up front, so a full disk shows now and not halfway; a
        failed reservation gives back what it took."""
        before = handle.stat().size
        try:
            handle.reserve(size)
        except OSError:
            handle.truncate(before)
            raise

    def check_file(
        self, fi: FileInfo, known: Mapping[str, FileInfo] | None = None
    ) -> tuple[FileInfo | None, FileStat | None] | None:
        """The never-clobber check before pulling file ``fi``: (local entry, what is on
        disk now), or None when only metadata differs — then it has been applied and no
        data needs to move. ``known``: the local entries of a batch, read just before
        (``IndexStore.get_local_many``)."""
        if known is not None:
            cur = known.get(fi.name)
        else:
            cur = self.index.get_local(self.folder, fi.name)
        st = self.check_unchanged(fi.name, cur)
        if cur is not None and cur.is_file and not cur.deleted and same_blocks(cur, fi):
            self.apply_metadata(fi, cur)
            return None
        return cur, st

    def _finish_file(
        self, fi: FileInfo, cur: FileInfo | None, tmp: str, handle: WriteHandle
    ) -> None:
        """Size, permissions, mtime and fsync through the open handle, then commit."""
        try:
            self.seal(fi, handle)
            handle.fsync()
            st = handle.stat()
        finally:
            handle.close()
        self.note_applying([(fi, st)])
        self.commit_file(fi, cur, tmp, st)

    def seal(self, fi: FileInfo, handle: WriteHandle) -> None:
        """Final size, permissions and mtime of a built temp file (before its fsync)."""
        handle.truncate(fi.size)
        perms = 0o644 if self.ignore_permissions or fi.no_permissions else (fi.permissions & 0o777)
        handle.chmod(perms)
        handle.set_mtime(fi.modified_ns)

    def open_temp(self, tmp: str) -> WriteHandle:
        try:
            return self.fs.open_write(tmp, mode=0o600)
        except (IsADirectoryError, UnsafePathError):
            # something that is not a regular file holds the temp name: clear it once
            st = self.stat_or_none(tmp)
            if st is None or st.type == FileType.FILE:
                raise
            if st.type == FileType.DIRECTORY:
                self.fs.rmdir(tmp)
            else:
                self.fs.remove(tmp)
            return self.fs.open_write(tmp, mode=0o600)

    def apply_metadata(self, fi: FileInfo, cur: FileInfo) -> None:
        if not self.ignore_permissions and not fi.no_permissions:
            self.fs.chmod(fi.name, fi.permissions & 0o777)
        self.fs.set_mtime(fi.name, fi.modified_ns)
        self.record(fi, self.fs.lstat(fi.name))

    def _fill_locally(
        self, handle: WriteHandle, fi: FileInfo, cur: FileInfo | None
    ) -> list[BlockInfo]:
        """Copy every block we can find on this device into the temp file; return the rest.
        A big file's blocks are split between ``FILL_THREADS`` threads: reading, hashing
        and page-cache writes then use both cores (a 1 GiB copy: 0.9 s on one, 0.5 on two)."""
        existing_size = handle.stat().size
        cur_blocks = blocks_by_place(cur)
        blocks = [b for b in fi.blocks if b.size]
        parts = FILL_THREADS if len(blocks) >= FILL_SPLIT_MIN_BLOCKS else 1
        step = -(-len(blocks) // parts) or 1
        ranges = [blocks[i : i + step] for i in range(0, len(blocks), step)]

        def fill(part: list[BlockInfo]) -> tuple[list[BlockInfo], int]:
            return self._fill_range(handle, fi.name, part, cur_blocks, existing_size)

        if len(ranges) <= 1:
            results = [fill(part) for part in ranges]
        else:
            with ThreadPoolExecutor(len(ranges), "p2psync-fill") as pool:
                results = list(pool.map(fill, ranges))
        missing: list[BlockInfo] = []
        for part_missing, found in results:
            missing.extend(part_missing)
            self.stats.blocks_local += found
        return missing

    def _fill_range(
        self,
        handle: WriteHandle,
        name: str,
        blocks: list[BlockInfo],
        cur_blocks: dict[tuple[int, bytes], BlockInfo],
        existing_size: int,
    ) -> tuple[list[BlockInfo], int]:
        """``_fill_locally`` for some of the blocks: (still missing, found locally)."""
        missing: list[BlockInfo] = []
        found = 0
        with BlockReaders(self.fs) as readers:
            for block in blocks:
                # 1. already in a partial temp file from an earlier attempt
                if block.offset + block.size <= existing_size and read_verified(handle, block):
                    found += 1
                    self.progress.advance(name, block.size)
                    continue
                data = self.find_local(name, block, cur_blocks, readers)
                if data is None:
                    missing.append(block)
                    continue
                handle.write_at(block.offset, data)
                found += 1
                self.progress.advance(name, block.size)
        return missing, found

    def find_local(
        self,
        name: str,
        block: BlockInfo,
        cur_blocks: dict[tuple[int, bytes], BlockInfo],
        readers: BlockReaders,
        indexed: Container[bytes] | None = None,
    ) -> bytes | None:
        """The block's data from this device, verified, or None: from the old version of
        this file at the same place (``cur_blocks``), else from any local file.
        ``indexed``: the hashes the block map held when the batch began
        (``IndexStore.blocks_present``); others are not looked up."""
        data = None
        if (block.offset, block.hash) in cur_blocks:
            data = readers.read(name, block)
        if data is None:
            data = self._recent_copy(block, readers)
        if data is None and (indexed is None or block.hash in indexed):
            for loc in self.index.find_block(block.hash):
                if loc.folder != self.folder or loc.size != block.size:
                    continue
                data = readers.read(loc.name, BlockInfo(loc.offset, loc.size, block.hash))
                if data is not None:
                    break
        if data is None:
            # a parallel rename may have moved the indexed copy a moment ago
            data = self._recent_copy(block, readers)
        return data

    def _recent_copy(self, block: BlockInfo, readers: BlockReaders) -> bytes | None:
        """The block from a file written earlier in this page (not yet in the block map)."""
        recent = self._recent_blocks.get(block.hash)
        if recent is None or recent[2] != block.size:
            return None
        return readers.read(recent[0], BlockInfo(recent[1], recent[2], block.hash))

    async def _fetch(self, handle: WriteHandle, fi: FileInfo, blocks: list[BlockInfo]) -> None:
        sources = list(await self.sources_for(fi.name))
        if not sources:
            raise ItemSkipped("no connected device has this version")
        random.shuffle(sources)
        failures: list[str] = []
        in_flight = trio.CapacityLimiter(requests_in_flight(fi.block_size))
        failed: list[str] = []

        async def fetch_one(i: int, block: BlockInfo, cancel: trio.CancelScope) -> None:
            async with in_flight:
                start = i % len(sources)
                for source in sources[start:] + sources[:start]:
                    try:
                        data = await source.request(
                            self.folder, fi.name, block.offset, block.size, block.hash
                        )
                    except Exception as exc:  # RequestFailed or a closed connection
                        failures.append(str(exc))
                        continue
                    if await writes.write(block, data):
                        self.stats.blocks_network += 1
                        self.stats.bytes_network += len(data)
                        self.progress.advance(fi.name, len(data), _device_of(source))
                        return
                    failures.append(f"block at {block.offset} failed its hash check")
                failed.append(failures[-1] if failures else "no source")
                cancel.cancel()

        async with trio.open_nursery() as writers:
            async with trio.open_nursery() as fetchers:
                writes = BlockWrites(handle, self.in_thread, fetchers.cancel_scope)
                writers.start_soon(writes.run)
                for i, block in enumerate(blocks):
                    fetchers.start_soon(fetch_one, i, block, fetchers.cancel_scope)
            writers.cancel_scope.cancel()
        if writes.error is not None:
            raise writes.error
        if failed:
            raise ItemSkipped(f"could not fetch all blocks: {failed[0]}")

    def commit_file(self, fi: FileInfo, cur: FileInfo | None, tmp: str, st_tmp: FileStat) -> None:
        # Re-check: the user may have changed the file while we were fetching.
        st = self.check_unchanged(fi.name, cur)
        if st is not None:
            self._move_old_aside(fi, cur)
        self.fs.rename(tmp, fi.name)
        self.mark_dirty(fi.name.rpartition("/")[0])
        self.record(fi, st_tmp)  # a rename keeps the inode, mode and mtime


def _device_of(source: BlockSource) -> bytes | None:
    device = getattr(source, "device_id", None)
    return getattr(device, "raw", None)


def requests_in_flight(block_size: int) -> int:
    """How many block requests one file keeps in flight: small blocks need more of them
    to keep the same amount of data moving."""
    return max(MIN_REQUESTS_IN_FLIGHT_PER_FILE, BYTES_IN_FLIGHT_PER_FILE // max(block_size, 1))


def same_blocks(a: FileInfo, b: FileInfo) -> bool:
    return a.size == b.size and [x.hash for x in a.blocks] == [y.hash for y in b.blocks]


def blocks_by_place(cur: FileInfo | None) -> dict[tuple[int, bytes], BlockInfo]:
    """The blocks of the local file ``cur`` by (offset, hash), for ``find_local``."""
    if cur is None or cur.deleted or cur.type != FileType.FILE:
        return {}
    return {(b.offset, b.hash): b for b in cur.blocks}


def skipped_for(exc: OSError | UnsafePathError, name: str) -> ItemSkipped:
    """What the user is told when applying ``name`` failed with ``exc``."""
    if isinstance(exc, UnsafePathError):
        return ItemSkipped(f"unsafe path: {exc}")
    if isinstance(exc, FileNotFoundError):
        return ItemSkipped(f"vanished while applying ({exc.strerror}); retrying later", rescan=True)
    if isinstance(exc, PermissionError):
        return ItemSkipped(f"permission denied: {exc.filename or name}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ItemSkipped(DISK_FULL)
    if exc.errno == errno.EROFS:
        return ItemSkipped("file system is read-only")
    if exc.errno in (errno.ENAMETOOLONG, errno.EILSEQ):  # valid for the peer's OS, not here
        return ItemSkipped(f"this filesystem cannot store the name ({exc.strerror})", kept=True)
    return ItemSkipped(f"{exc.strerror or exc}")
