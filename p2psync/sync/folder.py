"""One shared folder: a serial work loop that scans, then pulls, and serves block requests.

Scans and pulls never overlap, so the scanner never sees a half-applied pull and the
puller's "unchanged since the last scan" check is meaningful. Triggers (watcher events,
new remote index data, a timer, the user) only set flags; the loop does the work.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..config import FolderConfig
from ..errors import FilesystemError
from ..events import EventLog
from ..fs.base import FileSystem
from ..fs.basic import BasicFS
from ..fs.internal import MARKER, VERSIONS_DIR, fold, is_own_temp_base
from ..identity import DeviceID
from ..index.store import IndexStore, NeedCursor
from ..protocol.messages import ErrorCode, Request, Response
from ..protocol.model import FileInfo, FileType
from ..resource_faults import RESOURCE_ERRORS, describe, first_leaf, is_disk_full
from ..scanner.ignore import Ignore, IgnoreError
from ..scanner.scan import ScanProgress
from .folder_lock import FolderLock
from .notify import SequenceWatch, Wakeup
from .overrides import override_local, revert_local
from .plan import mass_delete_exceeded
from .pull_round import PullRound
from .puller import DISK_FULL, MIN_FREE_BYTES, BlockSource, ItemSkipped, Puller
from .scan_round import ScanRound
from .serve import BlockServer, ServeQueue
from .versioner import KeepAllVersioning, NoVersioning, Versioner

log = logging.getLogger("p2psync.sync.folder")

PULL_PAGE = 256
RETRY_MIN = 1.0
RETRY_MAX = 60.0
VERSION_CLEAN_INTERVAL = 3600.0
WAKE_COALESCE = 0.01
RENAME_SOURCES_MAX = 200_000
TEMP_MAX_AGE_NS = 24 * 3600 * 10**9  # like Syncthing: a day-old partial file is garbage
PULL_DEBOUNCE = 0.03  # seconds without index updates before pulling
PULL_DEBOUNCE_MAX = 2.0
SPACE_CHECK_INTERVAL = 2.0  # while paused for a full disk: how often free space is looked at
SPACE_RETURNED = 1024 * 1024  # this much more free space than at the failure: try again now
NOT_SYNCED_LISTED = 1000  # refused items shown in the status (all are kept in the index)


@dataclass
class FolderStatus:
    state: str = "starting"  # starting, idle, scanning, syncing, error, paused
    reason: str = ""
    item_errors: dict[str, str] = field(default_factory=dict)
    # peers' items refused for good (since this start), with why: not errors, not retried
    not_synced: dict[str, str] = field(default_factory=dict)
    last_scan: float = 0.0
    scan_problems: list[tuple[str, str]] = field(default_factory=list)
    conflicts: int = 0
    # the first full scan since start: until it completes, peers may not know every file
    initial_scan_done: bool = False
    scan_progress: ScanProgress | None = None  # of the scan running now (None: not scanning)


class FolderRunner:
    def __init__(
        self,
        config: FolderConfig,
        *,
        index: IndexStore,
        local: DeviceID,
        db_limiter: trio.CapacityLimiter,
        io_limiter: trio.CapacityLimiter | None = None,
        sources_for: Callable[[str, str], Awaitable[Sequence[BlockSource]]],
        sources_for_many: Callable[[str, list[str]], Awaitable[dict[str, Sequence[BlockSource]]]]
        | None = None,
        events: EventLog,
        fs: FileSystem | None = None,
        versioner: Versioner | None = None,
        hash_workers: int = 2,
        on_index_reset: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.id = config.id
        self.index = index
        self.local = local
        self.limiter = db_limiter
        # Block reads/writes/hashes: many small jobs in flight, separate from index work.
        self.io_limiter = io_limiter or trio.CapacityLimiter(16)
        self.events = events
        self.fs = fs or BasicFS(config.resolved_path)
        self.versioner = versioner or _make_versioner(self.fs, config)
        self.hash_workers = hash_workers
        self.status = FolderStatus()
        self.local_sequence = SequenceWatch()
        self.ignore = Ignore()
        self._wake = Wakeup()
        self._wake.set()  # scan (and pull) as soon as the loop starts
        self._scan_full = True
        self._scan_paths: set[str] = set()
        self._pull_wanted = True
        self._retry_at: float | None = None
        self._retry_delay = RETRY_MIN
        self._override_confirmed_deletes = False
        self.server = BlockServer(self.id, self.fs, index, lambda: self.ignore)
        self.serve_queue = ServeQueue(self.server, self.io_limiter)
        self._watching = False
        self._retry_soon = False
        self._hold_reason = ""  # why pulling is held (mass-delete guard), until confirmed
        self._pull_due: float | None = None
        self._remote_updates_in_flight = 0
        self._remote_updates_stored = 0
        self._remote_update_stored = trio.Event()  # replaced after each one
        self._temps_to_clean = False  # after a full scan, once nothing is needed
        self._pull_burst_start: float | None = None
        self._nursery: trio.Nursery | None = None
        self._started_up = False
        self._fault_reason = ""  # why the last round failed (logged once per reason)
        self._space_wait = False  # paused for a full disk: watch free space
        self._space_floor: int | None = None  # free bytes when that was noticed
        self._space_checked = 0.0
        self._blocked = ""  # why the config keeps this folder from running (nested paths)
        self._watch_scope = trio.CancelScope()
        self._settings_changed = trio.Event()  # replaced after each update_config
        self._on_index_reset = on_index_reset
        # Whether the local index may no longer describe the disk: at start (the folder
        # may have been emptied while stopped) and once the marker was seen missing.
        self._recheck_local = True
        self._marker_lost = False
        self._lock = FolderLock(config.resolved_path)
        self.puller = Puller(
            folder=self.id,
            fs=self.fs,
            index=index,
            versioner=self.versioner,
            limiter=self.io_limiter,
            sources_for=lambda name: sources_for(self.id, name),
            sources_for_many=(lambda names: sources_for_many(self.id, names))
            if sources_for_many is not None
            else None,
            ignore_permissions=config.ignore_permissions,
            max_conflicts=config.max_conflicts,
            defer_records=True,
        )

    def update_config(self, config: FolderConfig) -> None:
        """Apply a changed folder config to the running folder (same id and path)."""
        previous, self.config = self.config, config
        if config.versioning != previous.versioning:
            self.versioner = _make_versioner(self.fs, config)
            self.puller.versioner = self.versioner
        self.puller.ignore_permissions = config.ignore_permissions
        self.puller.max_conflicts = config.max_conflicts
        if config.ignore_permissions != previous.ignore_permissions:
            self.request_scan(None)
        if (config.watcher, config.watcher_delay_ms) != (
            previous.watcher,
            previous.watcher_delay_ms,
        ):
            self._watch_scope.cancel()  # the loop starts it again with the new settings
            self._watching = False
            self.request_scan(None)  # what changed while nothing watched
        self._settings_changed.set()
        self._settings_changed = trio.Event()
        self.request_pull()

    def set_blocked(self, reason: str) -> None:
        """Keep the folder from scanning and pulling while ``reason`` (e.g. it contains
        another folder) holds; ``""`` lets it run again."""
        if reason != self._blocked:
            if reason:
                log.warning("%s: not syncing: %s", self.id, reason)
            self._blocked = reason
            self.request_scan(None)

    # ---- triggers ------------------------------------------------------------------
    def request_scan(self, paths: Sequence[str] | None = None) -> None:
        if paths is None:
            self._scan_full = True
        else:
            self._scan_paths.update(paths)
        self._wake.set()

    def request_pull(self) -> None:
        self._pull_wanted = True
        self._wake.set()

    def begin_remote_update(self) -> None:
        """An index update from a peer is being stored: hold pulling (briefly) so the
        rest of a burst is seen together."""
        self._remote_updates_in_flight += 1
        if self._pull_burst_start is None:
            self._pull_burst_start = trio.current_time()

    def end_remote_update(self) -> None:
        self._remote_updates_in_flight -= 1
        self._remote_updates_stored += 1
        self._remote_update_stored.set()
        self._remote_update_stored = trio.Event()
        self.request_pull_soon()

    def request_pull_soon(self) -> None:
        """Pull once index updates stop arriving for a moment (or after PULL_DEBOUNCE_MAX):
        a burst of updates — e.g. a rename's adds and deletes — is then pulled as one."""
        now = trio.current_time()
        if self._pull_burst_start is None:
            self._pull_burst_start = now
        self._pull_due = min(now + PULL_DEBOUNCE, self._pull_burst_start + PULL_DEBOUNCE_MAX)
        self._wake.set()

    def confirm_deletes(self) -> None:
        """The user accepted a mass delete that paused the folder."""
        self._override_confirmed_deletes = True
        self._hold_reason = ""
        self.request_pull()

    async def _db(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # ---- the loop ------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            try:
                await self._start_up()
            except RESOURCE_ERRORS as exc:  # e.g. a full disk: the node starts, this folder waits
                self._failed(exc)
            await self._run_loop(task_status)
        finally:
            self._lock.release()

    async def _run_loop(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            nursery.start_soon(self._periodic_scans)
            self._nursery = nursery
            await nursery.start(self.serve_queue.run)
            nursery.start_soon(self._clean_versions)
            while True:
                space_check = (
                    self._space_checked + SPACE_CHECK_INTERVAL if self._space_wait else None
                )
                due = min(
                    (t for t in (self._retry_at, self._pull_due, space_check) if t is not None),
                    default=float("inf"),
                )
                timeout = max(0.0, due - trio.current_time())
                with trio.move_on_after(timeout):
                    await self._wake.wait()
                    await trio.sleep(WAKE_COALESCE)  # let a burst of triggers become one round
                if self._space_wait and trio.current_time() >= self._space_checked + (
                    SPACE_CHECK_INTERVAL
                ):
                    await self._check_space_returned()
                if self._retry_at and trio.current_time() >= self._retry_at:
                    self._retry_at = None
                    self._pull_wanted = True
                now = trio.current_time()
                if (
                    self._pull_due is not None
                    and self._remote_updates_in_flight
                    and self._pull_burst_start is not None
                    and now < self._pull_burst_start + PULL_DEBOUNCE_MAX
                ):
                    self._pull_due = max(self._pull_due, now + PULL_DEBOUNCE)
                if self._pull_due is not None and now >= self._pull_due:
                    self._pull_due = None
                    self._pull_burst_start = None
                    self._pull_wanted = True
                if self._pull_due is not None and not (
                    self._scan_full or self._scan_paths or self._pull_wanted
                ):
                    continue  # more index updates may be on their way
                if self.config.paused:
                    self._set_state("paused", "paused by the user")
                    continue
                if self._fault_reason and self._retry_at and trio.current_time() < self._retry_at:
                    continue  # after a failed round, triggers wait for the retry (backoff)
                await self._round()

    async def _start_up(self) -> None:
        """Record what was applied before the last stop and read where our index stands."""
        adopted = await trio.to_thread.run_sync(self.puller.adopt_applied, limiter=self.io_limiter)
        if adopted:
            log.info("%s: recorded %d files applied just before the last stop", self.id, adopted)
        self.local_sequence.set(await self._db(self.index.max_sequence, self.id, self.local.raw))
        await self._db(self.index.local_index_id, self.id)
        self._started_up = True

    async def _round(self) -> None:
        """One round of work. A full disk, exhausted file handles or an index that cannot be
        written put this folder in a state with the reason (paused for a full disk, error
        otherwise) and are retried with backoff; they never end the daemon."""
        try:
            await self._work()
        except* RESOURCE_ERRORS as group:
            self._failed(first_leaf(group))
        except* Exception as group:  # a bug must cost this round, not the daemon
            leaf = first_leaf(group)
            log.error("%s: a round of work failed", self.id, exc_info=leaf)
            self._failed(leaf)
        else:
            if self._fault_reason:
                log.info("%s: working again after: %s", self.id, self._fault_reason)
                self._fault_reason = ""
        if self._space_wait:
            await self._drop_partials_if_low()

    async def _drop_partials_if_low(self) -> None:
        """Paused for a full disk with less than the reserve free: drop the partial temp
        files kept for resuming (after a restart they may hold the last free bytes, and
        then nothing, not even the index, could be written)."""
        try:
            free = await trio.to_thread.run_sync(self.fs.free_space)
        except (OSError, FilesystemError):
            return
        if free >= MIN_FREE_BYTES:
            return
        removed = await trio.to_thread.run_sync(
            _remove_temp_files, self.fs, time.time_ns() + 1, limiter=self.io_limiter
        )
        if removed:
            log.warning(
                "%s: removed %d partial temporary files: less than %d MiB was free",
                self.id,
                removed,
                MIN_FREE_BYTES // 2**20,
            )

    def _failed(self, exc: BaseException) -> None:
        if is_disk_full(exc):
            where = (
                "for the index in the daemon's home"
                if not isinstance(exc, OSError)
                else f"on {self.config.path}"
            )
            state, reason = "paused", f"{DISK_FULL} {where}; resumes when space is freed"
            self._space_wait = True
        else:
            state, reason = "error", f"{describe(exc)}; retrying"
        if reason != self._fault_reason:
            log.error("%s: %s (%s)", self.id, reason, exc)
            self._fault_reason = reason
        self._set_state(state, reason)
        self._schedule_retry()

    async def _check_space_returned(self) -> None:
        """While paused for a full disk: go again as soon as space is freed."""
        self._space_checked = trio.current_time()
        free = await trio.to_thread.run_sync(self._free_space)
        if self._space_floor is None or free < self._space_floor:
            self._space_floor = free
        elif free >= self._space_floor + SPACE_RETURNED:
            log.info("%s: %d MiB free again; resuming", self.id, free // 2**20)
            self._space_floor = free
            self._retry_at = trio.current_time()
            self._retry_delay = RETRY_MIN
            self._pull_wanted = True

    def _free_space(self) -> int:
        """Free bytes where this folder writes: the folder's file system and the index's."""
        try:
            st = os.statvfs(self.index.path.parent)
            home = st.f_bavail * st.f_frsize
        except OSError:
            home = 0
        try:
            return min(home, self.fs.free_space())
        except (OSError, FilesystemError):
            return 0

    async def _work(self) -> None:
        if not self._started_up:
            await self._start_up()
        if not await self._prepare():
            return
        if self.config.watcher and not self._watching:
            self._watching = True  # started once the folder root is known to exist
            assert self._nursery is not None
            await self._nursery.start(self._watch)
        if self._scan_full or self._scan_paths:
            await self._scan()
        if self._pull_wanted:
            self._pull_wanted = False
            await self._pull()
            if self._scan_paths:  # local changes or conflict copies: scan them, then pull again
                self._pull_wanted = True
                self._wake.set()
        if self._temps_to_clean and self.status.state != "paused" and not self.status.item_errors:
            await self._clean_stale_temps()
        self._settle_state()

    def _settle_state(self) -> None:
        """The state once a round of work is done: the most important reason wins."""
        errors = self.status.item_errors
        if DISK_FULL not in errors.values():
            self._space_wait, self._space_floor = False, None
        if self.config.paused:
            self._set_state("paused", "paused by the user")
        elif self._hold_reason:
            self._set_state("paused", self._hold_reason)
        elif DISK_FULL in errors.values():
            self._set_state(
                "paused", f"{DISK_FULL} on {self.config.path}; pulling resumes when space is freed"
            )
            self._space_wait = True
        elif errors:
            self._set_state("error", f"{len(errors)} items not in sync")
        else:
            self._set_state("idle")

    async def _prepare(self) -> bool:
        """The folder root must exist and carry our marker (so an unmounted disk never
        looks like "everything was deleted")."""
        if self._blocked:
            self._set_state("error", self._blocked)
            return False
        ok, reason = await trio.to_thread.run_sync(self._check_root)
        if not ok:
            self._set_state("error", reason)
            self._schedule_retry()
            return False
        if self._recheck_local:
            why = await trio.to_thread.run_sync(self._local_index_outdated, limiter=self.io_limiter)
            self._recheck_local = self._marker_lost = False
            if why:
                await self._reset_local_index(why)
        try:
            self.ignore = await trio.to_thread.run_sync(Ignore.load, self.config.resolved_path)
        except IgnoreError as exc:
            self._set_state("error", f"bad ignore file: {exc}")
            self._schedule_retry()
            return False
        return True

    def _check_root(self) -> tuple[bool, str]:
        root = self.config.resolved_path
        if not root.is_dir():
            if self.index.max_sequence(self.id, self.local.raw) > 0 or root.exists():
                self._recheck_local = self._marker_lost = True
                return False, f"folder path {root} is missing (unmounted disk?)"
            root.mkdir(parents=True)  # a new folder: create it, like ~/Sync on first run
        try:
            self.fs.lstat(MARKER)
        except FileNotFoundError:
            has_files = self.index.max_sequence(self.id, self.local.raw) > 0
            if has_files:
                self._recheck_local = self._marker_lost = True
                return False, f"folder marker {MARKER} is missing in {root} (unmounted disk?)"
            self.fs.mkdir(MARKER)
        busy = self._lock.ensure()
        if busy:
            return False, busy
        return True, ""

    def _local_index_outdated(self) -> str:
        """Why this device's index of the folder no longer describes its disk, or "".

        Scanning would turn every missing file into a deletion sent to every device
        when the missing files are no decision of the user: a marker that went missing
        and came back (recreated by hand, a disk restored) with any indexed file not on
        disk, or a start with none of the indexed files on disk (emptied or replaced
        while the daemon was stopped). Such a folder starts from the cluster's state.
        A marker back with every file in place (a disk remounted) changes nothing."""
        indexed = False
        for fi in self.index.iter_local(self.id):
            if fi.deleted or fi.invalid or fi.is_directory:
                continue
            indexed = True
            try:
                self.fs.lstat(fi.name)
            except (OSError, FilesystemError):
                if self._marker_lost:
                    return f"the folder marker {MARKER} is back but {fi.name!r} is not"
                continue
            if not self._marker_lost:
                return ""
        if indexed and not self._marker_lost:
            return "none of the files in its index are on disk"
        return ""

    async def _reset_local_index(self, why: str) -> None:
        """Forget this device's index of the folder (new index ID) and pull the cluster's
        state: peers drop our old entries rather than receive deletions; files still on
        disk are scanned again and match (or conflict with) what peers have."""
        log.warning(
            "%s: %s; starting again from the other devices' state (nothing is deleted elsewhere)",
            self.id,
            why,
        )
        await self._db(self.index.reset_local, self.id)
        self.server.clear_cache()
        self._scan_full = True
        self._pull_wanted = True
        self.events.emit("FolderIndexReset", folder=self.id, reason=why)
        if self._on_index_reset is not None:
            await self._on_index_reset(self.id)

    def _set_state(self, state: str, reason: str = "") -> None:
        if (state, reason) != (self.status.state, self.status.reason):
            self.status.state = state
            self.status.reason = reason
            self.events.emit("FolderStateChanged", folder=self.id, state=state, reason=reason)

    def _schedule_retry(self) -> None:
        self._retry_at = trio.current_time() + self._retry_delay
        self._retry_delay = min(RETRY_MAX, self._retry_delay * 2)

    async def _clean_versions(self) -> None:
        """Expire old versions (trashcan days, simple keep-N, staggered thinning) hourly."""
        clean = getattr(self.versioner, "clean", None)
        if clean is None:
            return
        while True:
            await trio.sleep(VERSION_CLEAN_INTERVAL)
            try:
                removed = await trio.to_thread.run_sync(clean, limiter=self.io_limiter)
            except (OSError, FilesystemError) as exc:
                log.warning("%s: cleaning old versions failed: %s", self.id, exc)
                continue
            if removed:
                log.info("%s: removed %d expired versions", self.id, removed)

    async def _periodic_scans(self) -> None:
        """A full scan every ``rescan_interval_s`` (0: never); a changed interval counts
        from the last periodic scan at once, not after the old interval ran out."""
        last = trio.current_time()
        while True:
            interval = self.config.rescan_interval_s
            changed = self._settings_changed
            with trio.move_on_at(last + interval if interval else math.inf):
                await changed.wait()
                continue
            last = trio.current_time()
            self.request_scan(None)

    async def _watch(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Feed watcher batches into scan requests; ready once the OS watches are armed."""
        if sys.platform.startswith("linux"):  # inotify on the event loop: no thread, no process
            from ..watch_inotify import watch_folder_inotify as watch_folder
        else:  # watchdog's observer threads, kept off this process's GIL
            from ..watch_process import watch_folder_in_child as watch_folder

        armed: list[bool] = []

        def started() -> None:
            armed.append(True)
            task_status.started()

        try:
            await self._watch_until_failed(watch_folder, started)
        except* RESOURCE_ERRORS as group:  # e.g. out of file handles: watch again later
            log.warning(
                "%s: stopped watching for changes (%s); rescanning, watching again next round",
                self.id,
                describe(first_leaf(group)),
            )
            self._watching = False
            self._scan_full = True  # changes may have been missed; no wake-up: the retry
            self._schedule_retry()  # comes with backoff, in case the cause persists
            if not armed:
                task_status.started()

    async def _watch_until_failed(
        self, watch_folder: Callable[..., Awaitable[None]], started: Callable[[], None]
    ) -> None:
        send, receive = trio.open_memory_channel[list[str] | None](16)
        # cancelled by update_config when the watcher settings change: the loop restarts it
        scope = self._watch_scope = trio.CancelScope()
        armed = False
        with scope:
            async with trio.open_nursery() as nursery:
                try:
                    await nursery.start(
                        lambda task_status: watch_folder(
                            self.config.resolved_path,
                            on_changes=send,
                            delay=self.config.watcher_delay_ms / 1000,
                            task_status=task_status,
                        )
                    )
                except FilesystemError as exc:  # e.g. the inotify watch limit
                    log.warning(
                        "%s: not watching for changes (%s); relying on periodic scans", self.id, exc
                    )
                    started()
                    return
                started()
                armed = True
                async with receive:
                    async for paths in receive:
                        self.request_scan(paths)
        if scope.cancelled_caught and not armed:
            started()

    # ---- scanning ------------------------------------------------------------------
    async def _scan(self) -> None:
        full = self._scan_full
        self._temps_to_clean = self._temps_to_clean or full
        paths = None if full else sorted(self._scan_paths)
        self._scan_full = False
        self._scan_paths = set()
        self._set_state("scanning")
        scan_round = ScanRound(
            folder_id=self.id,
            config=self.config,
            fs=self.fs,
            index=self.index,
            local=self.local,
            ignore=self.ignore,
            hash_workers=self.hash_workers,
            db=self._db,
            on_stored=self._scanned_stored,
            on_progress=self._scan_progressed,
        )
        self.status.scan_progress = scan_round.progress
        try:
            result = await scan_round.run(paths)
        except BaseException:  # not done: ask for it again (the error is re-raised)
            if paths is None:
                self._scan_full = True
            else:
                self._scan_paths.update(paths)
            raise
        finally:
            self.status.scan_progress = None
        self.status.last_scan = time.time()
        self.status.scan_problems = result.problems[:1000]
        for name, reason in result.problems[:20]:
            log.warning("%s: cannot sync %r: %s", self.id, name, reason)
        self.events.emit(
            "LocalIndexUpdated" if result.changed else "ScanCompleted",
            folder=self.id,
            changed=result.changed,
            full=full,
            seconds=round(result.seconds, 3),
        )
        if full and not self.status.initial_scan_done:
            self.status.initial_scan_done = True
            self.events.emit(
                "InitialScanCompleted",
                folder=self.id,
                **scan_round.progress.snapshot(time.monotonic()),
            )
        if result.changed:
            self._pull_wanted = True

    def _scan_progressed(self, progress: ScanProgress) -> None:
        self.events.emit(
            "FolderScanProgress",
            folder=self.id,
            initial=not self.status.initial_scan_done,
            **progress.snapshot(time.monotonic()),
        )

    def _scanned_stored(self, stored: list[FileInfo]) -> None:
        self.server.clear_cache()
        self.local_sequence.set(max(f.sequence for f in stored))

    async def _clean_stale_temps(self) -> None:
        """Remove puller temp files once nothing is needed: an interrupted pull's partial
        file is kept (and reused) while its item is still needed, and is garbage after."""
        need = await self._db(self.index.need_counts, self.id)
        if need.files + need.directories + need.symlinks + need.deleted:
            return
        self._temps_to_clean = False
        cutoff = time.time_ns() - TEMP_MAX_AGE_NS
        removed = await trio.to_thread.run_sync(
            _remove_temp_files, self.fs, cutoff, limiter=self.io_limiter
        )
        if removed:
            log.info("%s: removed %d stale temporary files", self.id, removed)

    # ---- pulling -------------------------------------------------------------------
    async def _pull(self) -> None:
        if self.config.type == "sendonly":
            return
        need = await self._db(self.index.need_counts, self.id)
        if need.deleted == 0:
            self._override_confirmed_deletes = False
        if need.files + need.directories + need.symlinks + need.deleted == 0:
            self._retry_delay = RETRY_MIN
            self.status.item_errors = {}
            self._hold_reason = ""
            return
        if await self._mass_delete_blocked(need.deleted):
            return
        self._set_state("syncing")
        done_before = self.puller.stats.items_done
        renames_before = self.puller.stats.renames
        rename_sources = {}
        if need.deleted and need.files:
            rename_sources = await self._db(self._collect_rename_sources)
        self._retry_soon = False
        pull_round = PullRound(
            folder_id=self.id,
            puller=self.puller,
            rename_sources=rename_sources,
            flush=self._flush_pulled,
            on_finished=self._item_finished,
            on_skipped=self._item_skipped,
        )
        cursor = NeedCursor()
        gen = self.index.iter_need(self.id, PULL_PAGE, cursor)
        updates_seen = self._remote_updates_stored
        # Deletions that arrive while the round runs wait for the next round, whose
        # mass-delete guard sees them: this one applies at most the ones its guard saw.
        deletes_allowed = need.deleted

        def wanted(fi: FileInfo) -> bool:
            nonlocal deletes_allowed
            if self._skip_ignored(fi):
                return False
            if fi.deleted:
                if deletes_allowed <= 0:
                    return False
                deletes_allowed -= 1
            return True

        async def next_page() -> list[FileInfo]:
            nonlocal gen, updates_seen
            while True:
                page = await self._db(_take, gen, PULL_PAGE)
                if not page:
                    if not await self._more_to_pull(updates_seen):
                        return []
                    # continue after the last entry with what the new updates added
                    updates_seen = self._remote_updates_stored
                    await trio.to_thread.run_sync(gen.close)
                    gen = self.index.iter_need(self.id, PULL_PAGE, cursor)
                    continue
                kept = [fi for fi in page if wanted(fi)]
                if kept:  # a page of ignored names only is no reason to stop
                    return kept

        try:
            await pull_round.run(next_page)
        finally:
            await trio.to_thread.run_sync(gen.close)
        new_errors = pull_round.errors
        if self._retry_soon and self.puller.stats.items_done > done_before:
            # e.g. a directory that became a file: its contents are gone now, go again
            self._retry_soon = False
            self._pull_wanted = True
            self._wake.set()
        self.status.item_errors = new_errors
        st = self.puller.stats
        log.info(
            "%s: pull round done: %d items (%d renamed locally), %d not synced; "
            "blocks so far: %d reused locally, %d fetched",
            self.id,
            st.items_done - done_before,
            st.renames - renames_before,
            len(new_errors),
            st.blocks_local,
            st.blocks_network,
        )
        if self.puller.created:
            created, self.puller.created = self.puller.created, []
            self._scan_paths.update(created)
            self.status.conflicts += len(created)
            made, self.puller.conflicts_made = self.puller.conflicts_made, []
            self._emit_conflicts(made)
        if new_errors:
            self._schedule_retry()
        else:
            self._retry_delay = RETRY_MIN

    def _emit_conflicts(self, made: list[tuple[str, str, int]]) -> None:
        """One ConflictCreated event per conflict copy: which file, the copy's name, and
        the device whose change won (its full ID when it shares this folder)."""
        by_short = {DeviceID.parse(d).short_id: d for d in self.config.devices}
        for name, copy, winner in made:
            self.events.emit(
                "ConflictCreated",
                folder=self.id,
                item=name,
                copy=copy,
                device=by_short.get(winner, f"{winner:016x}"),
            )

    async def _more_to_pull(self, updates_seen: int) -> bool:
        """At the end of a pull round's pages: whether peers' index updates stored since
        ``updates_seen`` may have added more to pull after them, so the round can go on
        with its pipeline full instead of ending and starting again (a peer sends a big
        new tree 1,000 entries at a time). Waits for updates being stored right now. Not
        when anything is to be deleted: rename detection and the mass-delete guard look
        at a round's deletions when it starts."""
        with trio.move_on_after(PULL_DEBOUNCE_MAX):
            while self._remote_updates_in_flight:
                await self._remote_update_stored.wait()
        if self._remote_updates_stored == updates_seen:
            return False
        need = await self._db(self.index.need_counts, self.id)
        return need.deleted == 0

    def _collect_rename_sources(self) -> dict[bytes, list[FileInfo]]:
        """Needed deletions of local files, by content: a needed new file with the same
        content is then applied as a rename of one of them (a remote rename or move costs
        no data copy). Bounded: past RENAME_SOURCES_MAX the rest are plain copies."""
        sources: dict[bytes, list[FileInfo]] = {}
        count = 0
        for fi in self.index.iter_need(self.id):
            if not fi.deleted:
                continue
            cur = self.index.get_local(self.id, fi.name)
            if cur is None or cur.deleted or not cur.is_file or not cur.blocks:
                continue
            sources.setdefault(cur.blocks_hash(), []).append(fi)
            count += 1
            if count >= RENAME_SOURCES_MAX:
                break
        return sources

    def _skip_ignored(self, fi: FileInfo) -> bool:
        return self.ignore.is_ignored(fi.name)

    def _item_skipped(self, fi: FileInfo, exc: ItemSkipped) -> None:
        if exc.kept:
            self._keep_not_synced(fi, exc.reason)
        else:
            log.info("%s: %s not synced: %s", self.id, fi.name, exc.reason)
        if exc.rescan:
            self._scan_paths.add(fi.name)
        if exc.retry_soon:
            self._retry_soon = True
        self.events.emit("ItemFinished", folder=self.id, item=fi.name, error=exc.reason)

    def _keep_not_synced(self, fi: FileInfo, reason: str) -> None:
        """Show a refused item in the status (bounded); a refused deletion has nothing to
        show. Logged as a warning: a peer sent something this device never stores."""
        if fi.deleted:
            self.status.not_synced.pop(fi.name, None)
            return
        self.note_not_synced(fi.name, reason)

    def note_not_synced(self, name: str, reason: str) -> None:
        """Show ``name`` as "not synced here" with ``reason`` (bounded), logging it once."""
        listed = self.status.not_synced
        if listed.get(name) == reason:
            return
        log.warning("%s: %r not synced here: %s", self.id, name, reason)
        if name in listed or len(listed) < NOT_SYNCED_LISTED:
            listed[name] = reason

    def _item_finished(self, fi: FileInfo) -> None:
        self.events.emit(
            "ItemFinished",
            folder=self.id,
            item=fi.name,
            error=None,
            action="delete" if fi.deleted else "update",
        )

    async def _flush_pulled(self) -> None:
        """Record what the puller applied (one index transaction) and make the renames
        durable (one fsync per directory); then announce it."""
        finished = self.puller.progress.finished()
        await trio.to_thread.run_sync(self.puller.flush_gated, limiter=self.io_limiter)
        self.puller.progress.flushed(finished)
        sequence = self.puller.take_flushed_sequence()  # batches also flush themselves
        if sequence:
            self.server.clear_cache()
            self.local_sequence.set(sequence)

    async def _mass_delete_blocked(self, deletes: int) -> bool:
        """Hold pulling if remote changes would delete too much of this folder.

        Deletions whose content is re-created elsewhere by the same change (renames,
        moves) do not count: renaming a large directory is not a mass delete.
        """
        if self._override_confirmed_deletes or deletes == 0:
            self._hold_reason = ""
            return False
        local = await self._db(self.index.counts, self.id, self.local.raw)
        total = local.files + local.symlinks
        share, minimum = self.config.mass_delete_share, self.config.mass_delete_min_deletes
        if not mass_delete_exceeded(deletes, total, share, minimum):
            self._hold_reason = ""
            return False
        real = await self._db(self._count_real_deletes)
        if not mass_delete_exceeded(real, total, share, minimum):
            self._hold_reason = ""
            return False
        reason = (
            f"remote changes would delete {real} of {total} files; "
            f"confirm with `p2psync folder confirm-deletes {self.id}`"
        )
        if reason != self._hold_reason:
            log.warning("%s: pulling held: %s", self.id, reason)
        self._hold_reason = reason
        return True

    def _count_real_deletes(self) -> int:
        """Needed deletions of local files whose content is not re-created by the change."""
        recreated: set[bytes] = set()
        deleted_names: list[str] = []
        for fi in self.index.iter_need(self.id):
            if fi.deleted:
                deleted_names.append(fi.name)
            elif fi.is_file:
                recreated.add(fi.blocks_hash())
        real = 0
        for name in deleted_names:
            cur = self.index.get_local(self.id, name)
            if cur is None or cur.deleted or cur.is_directory:
                continue
            if cur.is_file and cur.blocks_hash() in recreated:
                continue
            real += 1
        return real

    # ---- serving -------------------------------------------------------------------
    async def serve_requests(self, requests: Sequence[Request]) -> list[Response]:
        """Answer a peer's block requests (read together: ``ServeQueue``). A block that no
        longer matches the index gets its file rescanned."""
        results = await self.serve_queue.read_many(requests)
        stale = [
            r.name
            for r, (code, _) in zip(requests, results, strict=True)
            if code == ErrorCode.INVALID_FILE
        ]
        if stale:
            self.request_scan(stale)
        return [
            Response(id=r.id, data=data, code=code)
            for r, (code, data) in zip(requests, results, strict=True)
        ]

    # ---- override / revert -----------------------------------------------------------
    async def override(self) -> int:
        """Send-only: make the cluster match this device by re-versioning local entries."""
        seq = await self._db(
            override_local,
            self.index,
            self.id,
            self.local.short_id,
            self.local.raw,
            int(time.time()),
        )
        self.local_sequence.set(seq)
        return seq

    async def revert(self) -> int:
        """Receive-only: drop local changes so the cluster's versions are pulled back."""
        archiver = self.versioner
        if isinstance(archiver, NoVersioning):
            archiver = KeepAllVersioning(self.fs)
        count = await self._db(revert_local, self.index, self.id, self.fs, archiver.archive)
        self.request_pull()
        return count


def drop_partials_on_full_disk(home: Path, folders: Sequence[FolderConfig]) -> int:
    """At start-up, when the home's disk has less than MIN_FREE_BYTES free: remove the
    puller's partial temp files in folders on that disk, so that files kept for resuming
    cannot keep the index, and so the daemon, from starting. Returns how many."""
    try:
        st = os.statvfs(home)
        device = os.stat(home).st_dev
    except OSError:
        return 0
    if st.f_bavail * st.f_frsize >= MIN_FREE_BYTES:
        return 0
    removed = 0
    for fc in folders:
        try:
            if os.stat(fc.resolved_path).st_dev != device:
                continue
        except OSError:
            continue
        removed += _remove_temp_files(BasicFS(fc.resolved_path), time.time_ns() + 1)
    if removed:
        log.warning("the disk of %s is full: removed %d partial temporary files", home, removed)
    return removed


def _remove_temp_files(fs: FileSystem, older_than_ns: int) -> int:
    """Walk the folder (never following symlinks) and delete puller temp files last
    written before ``older_than_ns`` (younger ones may still be reused after a restart)."""
    removed = 0
    pending = [""]
    while pending:
        dirname = pending.pop()
        try:
            entries = fs.scandir(dirname)
        except (OSError, FilesystemError):
            continue
        for entry in entries:
            name = f"{dirname}/{entry.name}" if dirname else entry.name
            if entry.stat.type == FileType.DIRECTORY:
                if not (dirname == "" and fold(entry.name) in (MARKER, VERSIONS_DIR)):
                    pending.append(name)
            elif is_own_temp_base(entry.name) and entry.stat.mtime_ns < older_than_ns:
                try:
                    fs.remove(name)
                    removed += 1
                except (OSError, FilesystemError):
                    pass
    return removed


def _take(gen, n: int) -> list:
    return list(itertools.islice(gen, n))


def _make_versioner(fs: FileSystem, config: FolderConfig) -> Versioner:
    try:
        from .versioner import make_versioner  # type: ignore[attr-defined]
    except ImportError:
        return NoVersioning()
    return make_versioner(fs, config.versioning)
