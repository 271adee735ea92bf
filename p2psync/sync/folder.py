"""One shared folder: a serial work loop that scans, then pulls, and serves block requests.

Scans and pulls never overlap, so the scanner never sees a half-applied pull and the
puller's "unchanged since the last scan" check is meaningful. Triggers (watcher events,
new remote index data, a timer, the user) are events for the folder's scheduler
(``folder_schedule.py``, pure); the loop carries out the actions it answers with. The
runner's parts are built by ``folder_build.build_folder``; the work of a round is done by
its collaborators, built here from those parts:

- ``folder_prepare.FolderPrepare``: the root, marker and local-index checks before a
  round (``folder_root.py``), and the ignore patterns;
- ``folder_scan.FolderScans``: a scan and what it changes;
- ``folder_pull.FolderPulls``: a pull round and what it changes, with
  ``folder_selection.FolderSelection`` (selective sync) and ``delete_hold.DeleteHold``
  (the mass-delete hold);
- ``folder_report.FolderReport``: the status the API shows and the events that go with it;
- ``folder_housekeeping``: expired versions and stale temp files.

They share the runner's parts as one ``folder_parts.FolderParts``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ..config import FolderConfig
from ..events import EventLog
from ..fs.base import FileSystem
from ..identity import DeviceID
from ..protocol.messages import Request, Response
from ..resource_faults import RESOURCE_ERRORS, first_leaf, is_disk_full
from ..scanner.ignore import Ignore, LoadedIgnore
from . import folder_schedule as sched
from .delete_hold import DeleteHold
from .folder_housekeeping import clean_stale_temps, clean_versions
from .folder_index import FolderIndex
from .folder_lock import FolderLock
from .folder_parts import FolderParts
from .folder_prepare import FolderPrepare
from .folder_pull import FolderPulls, OnRefused
from .folder_report import FolderReport, failure_reason, settled_state
from .folder_scan import FolderScans
from .folder_selection import FolderSelection
from .folder_status import FolderStatus
from .folder_tuning import DEFAULT_TUNING, FolderTuning
from .folder_watch import WatchFolder, watch_changes
from .full_disk import drop_partials_if_low, drop_partials_on_full_disk, free_space
from .notify import Counter, SequenceWatch, Wakeup
from .overrides import override_local, revert_local
from .pull import DISK_FULL, Puller
from .serve import BlockServer, ServeQueue
from .versioner import KeepAllVersioning, NoVersioning, Versioner

log = logging.getLogger("p2psync.sync.folder")

__all__ = ["FolderRunner", "FolderStatus", "WatchFolder", "drop_partials_on_full_disk"]


class FolderRunner:
    def __init__(
        self,
        config: FolderConfig,
        *,
        fs: FileSystem,
        index: FolderIndex,
        local: DeviceID,
        db_limiter: trio.CapacityLimiter,
        io_limiter: trio.CapacityLimiter,
        puller: Puller,
        versioner: Versioner,
        versioner_for: Callable[[FolderConfig], Versioner],
        watch_folder: WatchFolder,
        block_server: Callable[[Callable[[], Ignore]], BlockServer],
        lock: FolderLock,
        events: EventLog,
        hash_workers: int = 2,
        on_index_reset: Callable[[str], Awaitable[None]] | None = None,
        tuning: FolderTuning = DEFAULT_TUNING,
        change_config: Callable[[Callable[..., Any]], Awaitable[Any]] | None = None,
        on_refused: OnRefused | None = None,
        ignore: LoadedIgnore | None = None,
    ) -> None:
        """``ignore``: where the patterns loaded last are kept, shared with the puller."""
        self.config = config
        self.id = config.id
        self.index = index
        self.local = local
        self.limiter = db_limiter
        # Block reads/writes/hashes: many small jobs in flight, separate from index work.
        self.io_limiter = io_limiter
        self.events = events
        self.fs = fs
        self.versioner = versioner
        self._versioner_for = versioner_for
        self.puller = puller
        self._watch_folder = watch_folder
        self.hash_workers = hash_workers
        self.local_sequence = SequenceWatch()
        self._ignore = ignore if ignore is not None else LoadedIgnore()
        self.tuning = tuning
        # when to scan, pull, retry, wait (folder_schedule.py); the runner does the work
        self._schedule = sched.initial(
            tuning,
            paused=config.paused,
            watcher=config.watcher,
            rescan_interval=config.rescan_interval_s,
        )
        self._wake = Wakeup()
        self._wake.set()  # scan (and pull) as soon as the loop starts
        self._scan_paths: set[str] = set()  # what the schedule's scan_paths are
        self.server = block_server(self._ignore)  # with the patterns loaded last
        self.serve_queue = ServeQueue(self.server, self.io_limiter)
        self._remote_updates = Counter()  # peers' index updates stored
        self._nursery: trio.Nursery | None = None
        self._started_up = False
        self._failure: BaseException | None = None  # the last round's, for the log
        self._blocked = ""  # why the config keeps this folder from running (nested paths)
        self._watch_scope = trio.CancelScope()
        self._lock = lock
        # the collaborators that do a round's work (see the module docstring)
        self._report = FolderReport(self.id, events, not_synced_listed=tuning.not_synced_listed)
        self.status = self._report.status
        parts = FolderParts(
            id=self.id,
            config=lambda: self.config,
            fs=fs,
            index=index,
            local=local,
            db=self._db,
            io_limiter=io_limiter,
            puller=puller,
            server=self.server,
            local_sequence=self.local_sequence,
            report=self._report,
            lock=lock,
        )
        self._prepare = FolderPrepare(parts, feed=self._feed, on_index_reset=on_index_reset)
        self._hold = DeleteHold(parts)
        self._selection = FolderSelection(parts, change_config)
        self._scans = FolderScans(
            parts,
            self._selection,
            hash_workers=hash_workers,
            progress_interval=tuning.scan_progress_interval,
        )
        self._pulls = FolderPulls(
            parts,
            ignore=self._ignore,
            tuning=tuning,
            hold=self._hold,
            selection=self._selection,
            remote_updates=self._remote_updates,
            updates_in_flight=lambda: self._schedule.updates_in_flight,
            note_paths=self._note_paths,
            on_refused=on_refused,
        )

    def update_config(self, config: FolderConfig) -> None:
        """Apply a changed folder config to the running folder (same id and path)."""
        previous, self.config = self.config, config
        if config.versioning != previous.versioning:
            self.versioner = self._versioner_for(config)
            self.puller.versioner = self.versioner
        self.puller.ignore_permissions = config.ignore_permissions
        self.puller.max_conflicts = config.max_conflicts
        if config.selected != previous.selected:
            self._selection.changed()
        if config.ignore_permissions != previous.ignore_permissions:
            self.request_scan(None)
        if (config.watcher, config.watcher_delay_ms) != (
            previous.watcher,
            previous.watcher_delay_ms,
        ):
            # the loop starts it again with the new settings, and scans what changed
            # while nothing watched
            self._feed(sched.WatcherSettingsChanged())
        self._feed(
            sched.Configured(
                paused=config.paused,
                watcher=config.watcher,
                rescan_interval=config.rescan_interval_s,
            )
        )
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
            self._feed(sched.ScanRequested(full=True))
            return
        self._scan_paths.update(paths)
        if self._scan_paths:
            self._feed(sched.ScanRequested(full=False))
        else:
            self._wake.set()

    def request_pull(self) -> None:
        self._feed(sched.PullRequested())

    def begin_remote_update(self) -> None:
        """An index update from a peer is being stored: hold pulling (briefly) so the
        rest of a burst is seen together."""
        self._feed(sched.RemoteUpdateBegan())

    def end_remote_update(self) -> None:
        self._remote_updates.step()
        self._feed(sched.RemoteUpdateEnded())

    def request_pull_soon(self) -> None:
        """Pull once index updates stop arriving for a moment (or after
        ``pull_debounce_max``): a burst of updates — e.g. a rename's adds and deletes —
        is then pulled as one."""
        self._feed(sched.PullSoonRequested())

    def confirm_deletes(self) -> None:
        """The user accepted a mass delete that paused the folder."""
        self._hold.confirm()
        self.request_pull()

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # ---- the schedule ----------------------------------------------------------------
    def _feed(self, event: sched.Event) -> tuple[sched.Action, ...]:
        """Step the schedule; do its immediate actions, return the ones that await."""
        self._schedule, actions = sched.step(self._schedule, event, trio.current_time())
        later: list[sched.Action] = []
        for action in actions:
            match action:
                case sched.Wake():
                    self._wake.set()
                case sched.StopWatcher():
                    self._watch_scope.cancel()
                case sched.ShowState(state=state, reason=reason):
                    self._set_state(state, reason)
                case sched.LogFault(reason=reason):
                    log.error("%s: %s (%s)", self.id, reason, self._failure)
                case sched.LogRecovered(reason=reason):
                    log.info("%s: working again after: %s", self.id, reason)
                case sched.SpaceReturned(free=free):
                    log.info("%s: %d MiB free again; resuming", self.id, free // 2**20)
                case _:
                    later.append(action)
        return tuple(later)

    async def _do(self, event: sched.Event) -> None:
        """Feed ``event`` and carry out what the schedule asks for, in order."""
        for action in self._feed(event):
            match action:
                case sched.MeasureSpace():
                    free = await trio.to_thread.run_sync(
                        free_space, self.fs, self.index.path.parent
                    )
                    await self._do(sched.SpaceMeasured(free))
                case sched.RunRound():
                    await self._round()
                case sched.StartWatcher():  # once the folder root is known to exist
                    assert self._nursery is not None
                    # cancelled by update_config when the watcher settings change
                    self._watch_scope = trio.CancelScope()
                    await self._nursery.start(
                        watch_changes,
                        self.id,
                        self.config.resolved_path,
                        self.config.watcher_delay_ms / 1000,
                        self._watch_folder,
                        self._watch_scope,
                        self.request_scan,
                        self._watcher_failed,
                    )
                case sched.Scan(full=full):
                    changed = await self._scan(full)
                    await self._do(sched.Scanned(changed))
                case sched.Pull():
                    await self._do(await self._pulls.pull())
                case sched.CleanTemps():
                    if await clean_stale_temps(
                        self.id,
                        index=self.index,
                        fs=self.fs,
                        db=self._db,
                        io_limiter=self.io_limiter,
                        max_age_ns=self.tuning.temp_max_age_ns,
                        seen=self._scans.temps_seen,
                    ):
                        self._feed(sched.TempsCleaned())
                case sched.DropPartialsIfLow():
                    await drop_partials_if_low(self.fs, self.id, self.io_limiter)
                case _:
                    raise AssertionError(f"unexpected action {action!r}")

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
            self._feed(sched.Started())  # periodic scans count from now
            self._nursery = nursery
            await nursery.start(self.serve_queue.serve)
            nursery.start_soon(self._clean_versions)
            while True:
                deadline = sched.next_deadline(self._schedule)
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._wake.wait()
                    # let a burst of triggers become one round
                    await trio.sleep(self.tuning.wake_coalesce)
                await self._do(sched.Woke())

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
        failed = False
        try:
            await self._work()
        except* RESOURCE_ERRORS as group:
            failed = True
            self._failed(first_leaf(group))
        except* Exception as group:  # a bug must cost this round, not the daemon
            failed = True
            leaf = first_leaf(group)
            log.error("%s: a round of work failed", self.id, exc_info=leaf)
            self._failed(leaf)
        await self._do(sched.RoundDone(failed=failed))

    def _failed(self, exc: BaseException) -> None:
        self._failure = exc  # for the log line, if the reason is new
        reason = failure_reason(exc, self.config.path)
        self._feed(sched.Failed(reason=reason, disk_full=is_disk_full(exc)))

    async def _work(self) -> None:
        if not self._started_up:
            await self._start_up()
        ignore = await self._prepare.prepare(self._blocked)
        if ignore is None:
            return
        self._ignore.current = ignore
        await self._do(sched.Prepared())  # the watcher, a scan, a pull: what is due
        shown_paused = self.status.state == "paused"
        await self._do(sched.WorkDone(shown_paused, bool(self.status.item_errors)))
        self._settle_state()

    def _settle_state(self) -> None:
        """The state once a round of work is done: the most important reason wins."""
        errors = self.status.item_errors
        disk_full = DISK_FULL in errors.values()
        shown = not (self.config.paused or self._hold.reason)
        self._feed(sched.ItemsSettled(disk_full=disk_full, shown=shown))
        self._set_state(
            *settled_state(self.config.paused, self._hold.reason, errors, self.config.path)
        )

    def _set_state(self, state: str, reason: str = "") -> None:
        self._report.set_state(state, reason)

    async def _clean_versions(self) -> None:
        await clean_versions(
            self.id, self.versioner, self.tuning.version_clean_interval, self.io_limiter
        )

    def _watcher_failed(self) -> None:
        # changes may have been missed: a full scan; no wake-up: the retry comes with
        # backoff, in case the cause persists
        self._feed(sched.WatcherFailed())

    # ---- scanning and pulling -------------------------------------------------------
    async def _scan(self, full: bool) -> int:
        """Scan everything (``full``) or the paths asked for; how many entries changed."""
        paths = None if full else sorted(self._scan_paths)
        self._scan_paths = set()

        def failed() -> None:  # not done: ask for it again (the error is re-raised)
            if paths is not None:
                self._scan_paths.update(paths)
            self._feed(sched.ScanFailed(full=full))

        def marker_lost() -> None:  # its deletions withheld: the next round checks it all
            self._prepare.root.note_marker_lost()
            failed()

        return await self._scans.scan(paths, self._ignore(), failed, marker_lost)

    def _note_paths(self, paths: Sequence[str]) -> None:
        """Scan ``paths`` in the next round (found while pulling)."""
        self._scan_paths.update(paths)
        if self._scan_paths:
            self._feed(sched.PathsNoted())

    def note_not_synced(self, name: str, reason: str) -> None:
        """Show ``name`` as "not synced here" with ``reason`` (bounded), logging it once."""
        self._report.note_not_synced(name, reason)

    # ---- serving -------------------------------------------------------------------
    async def serve_requests(self, requests: Sequence[Request]) -> list[Response]:
        """Answer a peer's block requests (read together: ``ServeQueue``). A block that no
        longer matches the index gets its file rescanned."""
        return await self.serve_queue.answer(requests, self.request_scan)

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
