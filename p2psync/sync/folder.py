"""One shared folder: a serial work loop that scans, then pulls, and serves block requests.

Scans and pulls never overlap, so the scanner never sees a half-applied pull and the
puller's "unchanged since the last scan" check is meaningful. Triggers (watcher events,
new remote index data, a timer, the user) are events for the folder's scheduler
(``folder_schedule.py``, pure); the loop carries out the actions it answers with. The
runner's parts are built by ``folder_build.build_folder``.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import trio

from ..config import FolderConfig
from ..errors import FilesystemError
from ..events import EventLog
from ..fs.base import FileSystem
from ..identity import DeviceID
from ..index.store import NeedCursor
from ..protocol.fileinfo import FileInfo
from ..protocol.messages import ErrorCode, Request, Response
from ..resource_faults import RESOURCE_ERRORS, describe, first_leaf, is_disk_full
from ..scanner.ignore import Ignore, IgnoreError
from ..scanner.scan import FLAG_NOT_SELECTED, FLAG_NOT_SYNCED_HERE, ScanProgress
from ..selection import Selection, follow_renames, is_at, is_selected
from . import folder_schedule as sched
from .folder_index import FolderIndex
from .folder_lock import FolderLock
from .folder_root import RootCheck, check_root, local_index_outdated
from .folder_schedule import PullResult
from .folder_status import FolderStatus
from .folder_tuning import DEFAULT_TUNING, FolderTuning
from .folder_watch import WatchFolder, watch_changes
from .full_disk import (
    drop_partials_if_low,
    drop_partials_on_full_disk,
    free_space,
    remove_temp_files,
)
from .needed_deletes import collect_rename_sources, mass_delete_hold
from .notify import SequenceWatch, Wakeup
from .overrides import override_local, revert_local
from .pull import DISK_FULL, ItemSkipped, Puller, PullRound
from .scan_round import ScanRound
from .selection_apply import forget_selected, trim
from .selection_renames import followed_selection
from .serve import BlockServer, ServeQueue
from .versioner import KeepAllVersioning, NoVersioning, Versioner

log = logging.getLogger("p2psync.sync.folder")

RENAME_SCANS = 4  # scans a selected directory's deletion waits for its new name
RENAME_NAMES_MAX = 100_000  # names a scan remembers to follow a selected directory's rename

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
    ) -> None:
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
        self.status = FolderStatus()
        self.local_sequence = SequenceWatch()
        self.ignore = Ignore()
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
        self._override_confirmed_deletes = False
        self.server = block_server(lambda: self.ignore)  # with the patterns loaded last
        self.serve_queue = ServeQueue(self.server, self.io_limiter)
        self._retry_soon = False
        self._hold_reason = ""  # why pulling is held (mass-delete guard), until confirmed
        self._remote_updates_stored = 0
        self._remote_update_stored = trio.Event()  # replaced after each one
        self._nursery: trio.Nursery | None = None
        self._started_up = False
        self._failure: BaseException | None = None  # the last round's, for the log
        self._blocked = ""  # why the config keeps this folder from running (nested paths)
        self._watch_scope = trio.CancelScope()
        self._on_index_reset = on_index_reset
        # Whether the local index may no longer describe the disk: at start (the folder
        # may have been emptied while stopped) and once the marker was seen missing.
        self._recheck_local = True
        self._marker_lost = False
        self._lock = lock
        self._selection_due = True  # apply the selection (selection_apply.py) next pull
        self._change_config = change_config  # saves and applies a config edit (renames)
        # a scan's deletions and additions, while a selection may follow a rename
        self._scan_gone: dict[str, bytes | None] = {}
        self._scan_new: dict[str, bytes | None] = {}
        self._rename_scans = 0
        self._selection_retries = 0

    def update_config(self, config: FolderConfig) -> None:
        """Apply a changed folder config to the running folder (same id and path)."""
        previous, self.config = self.config, config
        if config.versioning != previous.versioning:
            self.versioner = self._versioner_for(config)
            self.puller.versioner = self.versioner
        self.puller.ignore_permissions = config.ignore_permissions
        self.puller.max_conflicts = config.max_conflicts
        if config.selected != previous.selected:
            self._selection_due = True
            self._selection_retries = 0
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
        self._remote_updates_stored += 1
        self._remote_update_stored.set()
        self._remote_update_stored = trio.Event()
        self._feed(sched.RemoteUpdateEnded())

    def request_pull_soon(self) -> None:
        """Pull once index updates stop arriving for a moment (or after
        ``pull_debounce_max``): a burst of updates — e.g. a rename's adds and deletes —
        is then pulled as one."""
        self._feed(sched.PullSoonRequested())

    def confirm_deletes(self) -> None:
        """The user accepted a mass delete that paused the folder."""
        self._override_confirmed_deletes = True
        self._hold_reason = ""
        self.request_pull()

    async def _db(self, fn, *args):
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
                    await self._do(await self._pull())
                case sched.CleanTemps():
                    if await self._clean_stale_temps():
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
        if is_disk_full(exc):
            where = (
                "for the index in the daemon's home"
                if not isinstance(exc, OSError)
                else f"on {self.config.path}"
            )
            reason = f"{DISK_FULL} {where}; resumes when space is freed"
        else:
            reason = f"{describe(exc)}; retrying"
        self._failure = exc  # for the log line, if the reason is new
        self._feed(sched.Failed(reason=reason, disk_full=is_disk_full(exc)))

    async def _work(self) -> None:
        if not self._started_up:
            await self._start_up()
        if not await self._prepare():
            return
        await self._do(sched.Prepared())  # the watcher, a scan, a pull: what is due
        shown_paused = self.status.state == "paused"
        await self._do(sched.WorkDone(shown_paused, bool(self.status.item_errors)))
        self._settle_state()

    def _settle_state(self) -> None:
        """The state once a round of work is done: the most important reason wins."""
        errors = self.status.item_errors
        disk_full = DISK_FULL in errors.values()
        shown = not (self.config.paused or self._hold_reason)
        self._feed(sched.ItemsSettled(disk_full=disk_full, shown=shown))
        if self.config.paused:
            self._set_state("paused", "paused by the user")
        elif self._hold_reason:
            self._set_state("paused", self._hold_reason)
        elif disk_full:
            self._set_state(
                "paused", f"{DISK_FULL} on {self.config.path}; pulling resumes when space is freed"
            )
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
        check = await trio.to_thread.run_sync(self._check_root)
        if check.reason:
            self._set_state("error", check.reason)
            self._feed(sched.RetryLater())
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
            self._feed(sched.RetryLater())
            return False
        return True

    def _check_root(self) -> RootCheck:
        check = check_root(
            self.config.resolved_path,
            self.fs,
            lambda: self.index.max_sequence(self.id, self.local.raw) > 0,
            self._lock,
        )
        if check.marker_lost:
            self._recheck_local = self._marker_lost = True
        return check

    def _local_index_outdated(self) -> str:
        return local_index_outdated(self.fs, self.index.iter_local(self.id), self._marker_lost)

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
        self._feed(sched.IndexReset())
        self.events.emit("FolderIndexReset", folder=self.id, reason=why)
        if self._on_index_reset is not None:
            await self._on_index_reset(self.id)

    def _set_state(self, state: str, reason: str = "") -> None:
        if (state, reason) != (self.status.state, self.status.reason):
            self.status.state = state
            self.status.reason = reason
            self.events.emit("FolderStateChanged", folder=self.id, state=state, reason=reason)

    async def _clean_versions(self) -> None:
        """Expire old versions (trashcan days, simple keep-N, staggered thinning) hourly."""
        clean = getattr(self.versioner, "clean", None)
        if clean is None:
            return
        while True:
            await trio.sleep(self.tuning.version_clean_interval)
            try:
                removed = await trio.to_thread.run_sync(clean, limiter=self.io_limiter)
            except (OSError, FilesystemError) as exc:
                log.warning("%s: cleaning old versions failed: %s", self.id, exc)
                continue
            if removed:
                log.info("%s: removed %d expired versions", self.id, removed)

    def _watcher_failed(self) -> None:
        # changes may have been missed: a full scan; no wake-up: the retry comes with
        # backoff, in case the cause persists
        self._feed(sched.WatcherFailed())

    # ---- scanning ------------------------------------------------------------------
    async def _scan(self, full: bool) -> int:
        """Scan everything (``full``) or the paths asked for; how many entries changed."""
        paths = None if full else sorted(self._scan_paths)
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
            progress_interval=self.tuning.scan_progress_interval,
        )
        self.status.scan_progress = scan_round.progress
        try:
            result = await scan_round.run(paths)
        except BaseException:  # not done: ask for it again (the error is re-raised)
            if paths is not None:
                self._scan_paths.update(paths)
            self._feed(sched.ScanFailed(full=full))
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
        await self._follow_renames()
        if full and not self.status.initial_scan_done:
            self.status.initial_scan_done = True
            self.events.emit(
                "InitialScanCompleted",
                folder=self.id,
                **scan_round.progress.snapshot(time.monotonic()),
            )
        return result.changed

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
        selection = self.config.selected
        if selection and len(self._scan_gone) + len(self._scan_new) < RENAME_NAMES_MAX:
            for f in stored:  # names and types: a tombstone holds no content to compare
                key = None if f.is_directory else b""
                if f.deleted and any(is_at(f.name, p) for p in selection):
                    self._scan_gone[f.name] = key
                elif not f.deleted and not f.invalid:
                    self._scan_new[f.name] = key

    async def _follow_renames(self) -> None:
        """A selected directory renamed here: the selection follows its new name."""
        gone, new = self._scan_gone, self._scan_new
        if not gone or self._change_config is None:
            self._scan_gone, self._scan_new = {}, {}
            return
        # a rename's two halves may be stored by two scans (the watcher's events):
        # keep them for a few scans before forgetting them
        self._rename_scans += 1
        if self._rename_scans >= RENAME_SCANS:
            self._scan_gone, self._scan_new, self._rename_scans = {}, {}, 0
        selection = self.config.selected
        moved = follow_renames(selection, gone, new)
        if moved == selection:
            return
        self._scan_gone, self._scan_new, self._rename_scans = {}, {}, 0
        log.info("%s: selected directories renamed; the selection is now %s", self.id, moved)
        await self._move_selection(selection, moved)

    async def _move_selection(self, selection: Selection, moved: Selection) -> None:
        """Save the selection ``moved`` in place of ``selection`` (unless the user changed
        it meanwhile)."""
        folder_id = self.id

        def edit(cfg: Any) -> Any:
            fc = cfg.folder(folder_id)
            if fc is None or fc.selected != selection:
                return cfg
            return cfg.with_folder(replace(fc, selected=moved))

        assert self._change_config is not None
        await self._change_config(edit)

    async def _follow_remote_renames(self) -> None:
        """A selected directory renamed by a peer: the selection follows its new name
        before the pull applies the move (selection_renames.py)."""
        selection = self.config.selected
        moved = await self._db(followed_selection, self.index, self.id, selection)
        if moved == selection:
            return
        log.info("%s: a peer renamed selected directories; now selected: %s", self.id, moved)
        await self._move_selection(selection, moved)
        await self._apply_selection()  # the new name's entries are needed in this round

    async def _clean_stale_temps(self) -> bool:
        """Remove puller temp files once nothing is needed: an interrupted pull's partial
        file is kept (and reused) while its item is still needed, and is garbage after.
        Whether it was time to (nothing needed)."""
        need = await self._db(self.index.need_counts, self.id)
        if need.files + need.directories + need.symlinks + need.deleted:
            return False
        cutoff = time.time_ns() - self.tuning.temp_max_age_ns
        removed = await trio.to_thread.run_sync(
            remove_temp_files, self.fs, cutoff, limiter=self.io_limiter
        )
        if removed:
            log.info("%s: removed %d stale temporary files", self.id, removed)
        return True

    # ---- pulling -------------------------------------------------------------------
    async def _apply_selection(self) -> None:
        """After a selection change (or at start): names selected again are needed again,
        and in-sync local copies left out are removed (selection_apply.py)."""
        if not self._selection_due:
            return
        self._selection_due = False
        selection = self.config.selected
        flagged = await self._db(self.index.count_local_flagged, self.id, FLAG_NOT_SELECTED)
        forgotten = (
            await self._db(forget_selected, self.index, self.id, selection) if flagged else 0
        )
        trimmed = await self._db(
            trim, self.index, self.id, self.fs, selection, self.puller.commit.check_unchanged
        )
        self.status.selection_kept = trimmed.kept
        self.status.selection_kept_count = trimmed.kept_count
        for name, why in list(trimmed.kept.items())[:20]:
            log.info("%s: %r is outside the selection but kept here: %s", self.id, name, why)
        if trimmed.rescan and self._selection_retries < 3:
            self._selection_retries += 1
            self._selection_due = True  # again after the scan of what changed
            self._note_paths(trimmed.rescan)
        if forgotten or trimmed.removed:
            self.server.clear_cache()
            self.local_sequence.set(
                await self._db(self.index.max_sequence, self.id, self.local.raw)
            )

    async def _leave_out(self, page: list[FileInfo]) -> list[FileInfo]:
        """``page`` without the names the selection leaves out and this device does not
        hold: those are kept as "not selected" (recorded with the round's flush). A file
        still here outside the selection (kept: a local change) syncs as before."""
        selection = self.config.selected
        if not selection:
            return page
        out = [fi for fi in page if is_selected(fi.name, selection)]
        if len(out) == len(page):
            return page
        left = [fi for fi in page if not is_selected(fi.name, selection)]
        locals_ = await self._db(self.index.get_local_many, self.id, [fi.name for fi in left])
        for fi in left:
            local = locals_.get(fi.name)
            if local is None or local.deleted or local.local_flags & FLAG_NOT_SYNCED_HERE:
                self.puller.keep_not_selected(fi)
            else:
                out.append(fi)
        return out

    async def _pull(self) -> sched.Pulled:
        await self._apply_selection()
        if self.config.selected and self._change_config is not None:
            await self._follow_remote_renames()
        if self.config.type == "sendonly":
            return sched.Pulled(PullResult.SKIPPED)
        need = await self._db(self.index.need_counts, self.id)
        if need.deleted == 0:
            self._override_confirmed_deletes = False
        if need.files + need.directories + need.symlinks + need.deleted == 0:
            self.status.item_errors = {}
            self._hold_reason = ""
            return sched.Pulled(PullResult.NOTHING_NEEDED)
        if await self._mass_delete_blocked(need.deleted):
            return sched.Pulled(PullResult.SKIPPED)
        self._set_state("syncing")
        done_before = self.puller.stats.items_done
        renames_before = self.puller.stats.renames
        rename_sources = {}
        if need.deleted and need.files:
            rename_sources = await self._db(
                collect_rename_sources, self.index, self.id, self.tuning.rename_sources_max
            )
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
        page_size = self.tuning.pull_page
        gen = self.index.iter_need(self.id, page_size, cursor)
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
                page = await self._db(_take, gen, page_size)
                if not page:
                    if not await self._more_to_pull(updates_seen):
                        return []
                    # continue after the last entry with what the new updates added
                    updates_seen = self._remote_updates_stored
                    await trio.to_thread.run_sync(gen.close)
                    gen = self.index.iter_need(self.id, page_size, cursor)
                    continue
                kept = [fi for fi in await self._leave_out(page) if wanted(fi)]
                if kept:  # a page of ignored names only is no reason to stop
                    return kept

        try:
            await pull_round.run(next_page)
        finally:
            await trio.to_thread.run_sync(gen.close)
        new_errors = pull_round.errors
        # e.g. a directory that became a file: its contents are gone now, go again
        go_again = self._retry_soon and self.puller.stats.items_done > done_before
        if go_again:
            self._retry_soon = False
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
            self._note_paths(created)
            self.status.conflicts += len(created)
            made, self.puller.conflicts_made = self.puller.conflicts_made, []
            self._emit_conflicts(made)
        result = PullResult.DONE_WITH_ERRORS if new_errors else PullResult.DONE
        return sched.Pulled(result, go_again=go_again)

    def _note_paths(self, paths: Sequence[str]) -> None:
        """Scan ``paths`` in the next round (found while pulling)."""
        self._scan_paths.update(paths)
        if self._scan_paths:
            self._feed(sched.PathsNoted())

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
        with trio.move_on_after(self.tuning.pull_debounce_max):
            while self._schedule.updates_in_flight:
                await self._remote_update_stored.wait()
        if self._remote_updates_stored == updates_seen:
            return False
        need = await self._db(self.index.need_counts, self.id)
        return need.deleted == 0

    def _skip_ignored(self, fi: FileInfo) -> bool:
        return self.ignore.is_ignored(fi.name)

    def _item_skipped(self, fi: FileInfo, exc: ItemSkipped) -> None:
        if exc.kept:
            self._keep_not_synced(fi, exc.reason)
        else:
            log.info("%s: %s not synced: %s", self.id, fi.name, exc.reason)
        if exc.rescan:
            self._note_paths([fi.name])
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
        if name in listed or len(listed) < self.tuning.not_synced_listed:
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
        config = self.config
        reason = await self._db(
            mass_delete_hold,
            self.index,
            self.id,
            self.local.raw,
            deletes,
            config.mass_delete_share,
            config.mass_delete_min_deletes,
        )
        if reason and reason != self._hold_reason:
            log.warning("%s: pulling held: %s", self.id, reason)
        self._hold_reason = reason
        return bool(reason)

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


def _take(gen, n: int) -> list:
    return list(itertools.islice(gen, n))
