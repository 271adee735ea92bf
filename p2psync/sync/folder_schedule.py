"""When a folder scans, pulls, retries and waits: a pure state machine, no I/O.

``step(schedule, event, now) -> (schedule, actions)``. The runner (folder.py) feeds it
what happened — triggers from outside (a scan or pull asked for, a peer's index update
being stored), the loop waking, and how each part of a round went — and executes the
actions it gets back. ``next_deadline`` says when the loop must wake on its own.

A round of work, as the runner drives it::

    Woke --> [MeasureSpace] --SpaceMeasured--> [RunRound] | [ShowState] | []
    RunRound: Prepared --> [StartWatcher] [Scan] --Scanned--> [Pull] --Pulled--> ...
              WorkDone --> [CleanTemps] --TempsCleaned-->; ItemsSettled; RoundDone

Rules kept here:

- scans and pulls never overlap; triggers only set flags, the loop does the work;
- a burst of peers' index updates is pulled as one: the pull waits until updates stop
  for ``pull_debounce`` (while one is being stored, the wait is extended), but never
  longer than ``pull_debounce_max`` after the burst began;
- a failed round (or a missing folder root, a bad ignore file, a failed watcher) is
  retried with backoff from ``retry_min`` doubling to ``retry_max``; triggers in between
  wait for the retry; a clean pull resets the backoff;
- paused for a full disk, free space is read every ``space_check_interval``; once
  ``space_returned`` more bytes are free than the lowest seen, the folder goes again;
- a full scan every ``rescan_interval`` seconds (0: never), counted from the last one,
  so a changed interval applies at once.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from .folder_tuning import DEFAULT_TUNING, FolderTuning

# ---- the state ---------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    tuning: FolderTuning = DEFAULT_TUNING
    # the folder's settings
    paused: bool = False  # by the user
    watcher: bool = False  # the config asks for a watcher
    rescan_interval: float = 0.0  # seconds between periodic full scans; 0: never
    # what the next round should do
    scan_full: bool = True  # scan and pull as soon as the loop starts
    scan_paths: bool = False  # some paths to scan (the runner holds their names)
    pull_wanted: bool = True
    temps_to_clean: bool = False  # after a full scan, once nothing is needed
    watching: bool = False  # the watcher was started (or is starting)
    # timers
    retry_at: float | None = None
    retry_delay: float = DEFAULT_TUNING.retry_min
    pull_due: float | None = None  # pull then (debounced peers' updates)
    burst_start: float | None = None  # when the burst of updates being debounced began
    updates_in_flight: int = 0  # peers' index updates being stored now
    last_periodic_scan: float = 0.0
    # faults
    fault: str = ""  # why the last round failed ("" once one succeeds)
    space_wait: bool = False  # paused for a full disk: watch free space
    space_floor: int | None = None  # the least free space seen while waiting
    space_checked: float = 0.0


def initial(
    tuning: FolderTuning = DEFAULT_TUNING,
    *,
    paused: bool = False,
    watcher: bool = False,
    rescan_interval: float = 0.0,
) -> Schedule:
    """A folder's schedule before its loop starts: scan and pull first thing."""
    return Schedule(
        tuning=tuning,
        paused=paused,
        watcher=watcher,
        rescan_interval=rescan_interval,
        retry_delay=tuning.retry_min,
    )


# ---- events ------------------------------------------------------------------------


class PullResult(enum.Enum):
    SKIPPED = "skipped"  # send-only, or held by the mass-delete guard
    NOTHING_NEEDED = "nothing-needed"
    DONE = "done"
    DONE_WITH_ERRORS = "done-with-errors"  # some items are not in sync: retry them


@dataclass(frozen=True)
class Configured:
    """The folder's settings (at start and after each config change)."""

    paused: bool
    watcher: bool
    rescan_interval: float


@dataclass(frozen=True)
class WatcherSettingsChanged:
    """The watcher must be started again with new settings."""


@dataclass(frozen=True)
class ScanRequested:
    full: bool  # False: the paths the runner just added


@dataclass(frozen=True)
class PathsNoted:
    """The pull found paths to scan (conflict copies, files that changed under it)."""


@dataclass(frozen=True)
class PullRequested:
    pass


@dataclass(frozen=True)
class PullSoonRequested:
    """Pull once index updates stop arriving for a moment (debounced)."""


@dataclass(frozen=True)
class RemoteUpdateBegan:
    pass


@dataclass(frozen=True)
class RemoteUpdateEnded:
    pass


@dataclass(frozen=True)
class IndexReset:
    """This device's index of the folder was dropped: scan and pull everything."""


@dataclass(frozen=True)
class Started:
    """The loop starts (periodic scans count from now)."""


@dataclass(frozen=True)
class Woke:
    """The loop woke: triggered, or a deadline passed."""


@dataclass(frozen=True)
class SpaceMeasured:
    free: int


@dataclass(frozen=True)
class RetryLater:
    """This round could not work (no folder root, bad ignore file, watcher failed)."""


@dataclass(frozen=True)
class WatcherFailed:
    """The watcher stopped: changes may have been missed."""


@dataclass(frozen=True)
class Prepared:
    """The folder root is there and the ignore patterns are loaded: work."""


@dataclass(frozen=True)
class Scanned:
    changed: int


@dataclass(frozen=True)
class ScanFailed:
    full: bool  # the scan that did not finish, asked for again


@dataclass(frozen=True)
class Pulled:
    result: PullResult
    go_again: bool = False  # an item asked to be retried at once, and the round progressed


@dataclass(frozen=True)
class WorkDone:
    shown_paused: bool  # the folder shows "paused" now
    item_errors: bool


@dataclass(frozen=True)
class TempsCleaned:
    pass


@dataclass(frozen=True)
class ItemsSettled:
    disk_full: bool  # some item is not in sync for a full disk
    shown: bool = True  # ... and that is the state shown (not a pause or a held pull)


@dataclass(frozen=True)
class Failed:
    """A round (or the start-up) failed with ``reason``."""

    reason: str
    disk_full: bool


@dataclass(frozen=True)
class RoundDone:
    failed: bool


Event = (
    Configured
    | WatcherSettingsChanged
    | ScanRequested
    | PathsNoted
    | PullRequested
    | PullSoonRequested
    | RemoteUpdateBegan
    | RemoteUpdateEnded
    | IndexReset
    | Started
    | Woke
    | SpaceMeasured
    | RetryLater
    | WatcherFailed
    | Prepared
    | Scanned
    | ScanFailed
    | Pulled
    | WorkDone
    | TempsCleaned
    | ItemsSettled
    | Failed
    | RoundDone
)

# ---- actions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Wake:
    """Wake the loop (it coalesces wake-ups into one round)."""


@dataclass(frozen=True)
class StopWatcher:
    pass


@dataclass(frozen=True)
class StartWatcher:
    pass


@dataclass(frozen=True)
class MeasureSpace:
    """Read the free space; answer with SpaceMeasured."""


@dataclass(frozen=True)
class ShowState:
    state: str
    reason: str = ""


@dataclass(frozen=True)
class RunRound:
    pass


@dataclass(frozen=True)
class Scan:
    full: bool  # False: the paths the runner holds; answer Scanned or ScanFailed


@dataclass(frozen=True)
class Pull:
    """Answer with Pulled."""


@dataclass(frozen=True)
class CleanTemps:
    """Remove stale temp files if nothing is needed (then answer TempsCleaned)."""


@dataclass(frozen=True)
class LogFault:
    reason: str  # a new reason for failing (logged once per reason)


@dataclass(frozen=True)
class LogRecovered:
    reason: str  # what the rounds failed with until now


@dataclass(frozen=True)
class SpaceReturned:
    free: int  # log it: the folder resumes


@dataclass(frozen=True)
class DropPartialsIfLow:
    """Paused for a full disk: drop the partial temp files if below the reserve."""


Action = (
    Wake
    | StopWatcher
    | StartWatcher
    | MeasureSpace
    | ShowState
    | RunRound
    | Scan
    | Pull
    | CleanTemps
    | LogFault
    | LogRecovered
    | SpaceReturned
    | DropPartialsIfLow
)

NO_ACTIONS: tuple[Action, ...] = ()
PAUSED_BY_USER = "paused by the user"

# ---- the machine ---------------------------------------------------------------------

_replace = dataclasses.replace


def next_deadline(s: Schedule) -> float | None:
    """When the loop must wake even if nothing triggers it (None: only when triggered)."""
    due = [t for t in (s.retry_at, s.pull_due) if t is not None]
    if s.space_wait:
        due.append(s.space_checked + s.tuning.space_check_interval)
    if s.rescan_interval:
        due.append(s.last_periodic_scan + s.rescan_interval)
    return min(due, default=None)


def step(s: Schedule, event: Event, now: float) -> tuple[Schedule, tuple[Action, ...]]:
    """The schedule after ``event`` at ``now``, and what the runner must do."""
    match event:
        case IndexReset():
            return _replace(s, scan_full=True, pull_wanted=True), NO_ACTIONS
        case ScanRequested(full=full):
            if full:
                return _replace(s, scan_full=True), (Wake(),)
            return _replace(s, scan_paths=True), (Wake(),)
        case PathsNoted():
            return _replace(s, scan_paths=True), NO_ACTIONS
        case PullRequested():
            return _replace(s, pull_wanted=True), (Wake(),)
        case RemoteUpdateBegan():
            start = now if s.burst_start is None else s.burst_start
            return _replace(s, updates_in_flight=s.updates_in_flight + 1, burst_start=start), ()
        case RemoteUpdateEnded():
            return _pull_soon(_replace(s, updates_in_flight=s.updates_in_flight - 1), now)
        case PullSoonRequested():
            return _pull_soon(s, now)
        case Configured(paused=paused, watcher=watcher, rescan_interval=interval):
            return _replace(s, paused=paused, watcher=watcher, rescan_interval=interval), ()
        case WatcherSettingsChanged():
            return _replace(s, watching=False, scan_full=True), (StopWatcher(), Wake())
        case Started():
            return _replace(s, last_periodic_scan=now), NO_ACTIONS
        case Woke():
            if s.space_wait and now >= s.space_checked + s.tuning.space_check_interval:
                return _replace(s, space_checked=now), (MeasureSpace(),)
            return _decide(s, now)
        case SpaceMeasured(free=free):
            return _space_measured(s, free, now)
        case RetryLater():
            return _retry_later(s, now), NO_ACTIONS
        case WatcherFailed():
            return _retry_later(_replace(s, watching=False, scan_full=True), now), NO_ACTIONS
        case Prepared():
            return _prepared(s)
        case Scanned(changed=changed):
            return _after_scan(_replace(s, pull_wanted=s.pull_wanted or bool(changed)))
        case ScanFailed(full=full):
            if full:
                return _replace(s, scan_full=True), NO_ACTIONS
            return _replace(s, scan_paths=True), NO_ACTIONS
        case Pulled(result=result, go_again=go_again):
            return _pulled(s, result, go_again, now)
        case WorkDone(shown_paused=shown_paused, item_errors=item_errors):
            if s.temps_to_clean and not shown_paused and not item_errors:
                return s, (CleanTemps(),)
            return s, NO_ACTIONS
        case TempsCleaned():
            return _replace(s, temps_to_clean=False), NO_ACTIONS
        case ItemsSettled(disk_full=disk_full, shown=shown):
            if not disk_full:
                return _replace(s, space_wait=False, space_floor=None), NO_ACTIONS
            if shown:
                return _replace(s, space_wait=True), NO_ACTIONS
            return s, NO_ACTIONS
        case Failed(reason=reason, disk_full=disk_full):
            return _failed(s, reason, disk_full, now)
        case RoundDone(failed=failed):
            actions: list[Action] = []
            if not failed and s.fault:
                actions.append(LogRecovered(s.fault))
                s = _replace(s, fault="")
            if s.space_wait:
                actions.append(DropPartialsIfLow())
            return s, tuple(actions)
    raise AssertionError(f"unknown event {event!r}")


def _pull_soon(s: Schedule, now: float) -> tuple[Schedule, tuple[Action, ...]]:
    start = now if s.burst_start is None else s.burst_start
    due = min(now + s.tuning.pull_debounce, start + s.tuning.pull_debounce_max)
    return _replace(s, burst_start=start, pull_due=due), (Wake(),)


def _retry_later(s: Schedule, now: float) -> Schedule:
    return _replace(
        s, retry_at=now + s.retry_delay, retry_delay=min(s.tuning.retry_max, s.retry_delay * 2)
    )


def _space_measured(s: Schedule, free: int, now: float) -> tuple[Schedule, tuple[Action, ...]]:
    actions: tuple[Action, ...] = NO_ACTIONS
    if s.space_floor is None or free < s.space_floor:
        s = _replace(s, space_floor=free)
    elif free >= s.space_floor + s.tuning.space_returned:
        actions = (SpaceReturned(free),)
        s = _replace(
            s, space_floor=free, retry_at=now, retry_delay=s.tuning.retry_min, pull_wanted=True
        )
    s, more = _decide(s, now)
    return s, actions + more


def _decide(s: Schedule, now: float) -> tuple[Schedule, tuple[Action, ...]]:
    """The loop is awake: whether a round runs now."""
    interval = s.rescan_interval
    if interval and now >= s.last_periodic_scan + interval:
        # as if a timer had fired at each interval since the last periodic scan
        last = now - (now - s.last_periodic_scan) % interval
        s = _replace(s, last_periodic_scan=last, scan_full=True)
    if s.retry_at is not None and now >= s.retry_at:
        s = _replace(s, retry_at=None, pull_wanted=True)
    if (
        s.pull_due is not None
        and s.updates_in_flight
        and s.burst_start is not None
        and now < s.burst_start + s.tuning.pull_debounce_max
    ):
        s = _replace(s, pull_due=max(s.pull_due, now + s.tuning.pull_debounce))
    if s.pull_due is not None and now >= s.pull_due:
        s = _replace(s, pull_due=None, burst_start=None, pull_wanted=True)
    if s.pull_due is not None and not (s.scan_full or s.scan_paths or s.pull_wanted):
        return s, NO_ACTIONS  # more index updates may be on their way
    if s.paused:
        return s, (ShowState("paused", PAUSED_BY_USER),)
    if s.fault and s.retry_at is not None and now < s.retry_at:
        return s, NO_ACTIONS  # after a failed round, triggers wait for the retry (backoff)
    return s, (RunRound(),)


def _prepared(s: Schedule) -> tuple[Schedule, tuple[Action, ...]]:
    actions: tuple[Action, ...] = NO_ACTIONS
    if s.watcher and not s.watching:
        s = _replace(s, watching=True)
        actions = (StartWatcher(),)
    if s.scan_full or s.scan_paths:
        full = s.scan_full
        s = _replace(s, scan_full=False, scan_paths=False, temps_to_clean=s.temps_to_clean or full)
        return s, (*actions, Scan(full))
    s, more = _after_scan(s)
    return s, actions + more


def _after_scan(s: Schedule) -> tuple[Schedule, tuple[Action, ...]]:
    if s.pull_wanted:
        return _replace(s, pull_wanted=False), (Pull(),)
    return s, NO_ACTIONS


def _pulled(
    s: Schedule, result: PullResult, go_again: bool, now: float
) -> tuple[Schedule, tuple[Action, ...]]:
    wake = False
    if go_again:  # e.g. a directory that became a file: its contents are gone now
        s, wake = _replace(s, pull_wanted=True), True
    if result is PullResult.DONE_WITH_ERRORS:
        s = _retry_later(s, now)
    elif result is not PullResult.SKIPPED:
        s = _replace(s, retry_delay=s.tuning.retry_min)
    if s.scan_paths:  # local changes or conflict copies: scan them, then pull again
        s, wake = _replace(s, pull_wanted=True), True
    return s, (Wake(),) if wake else NO_ACTIONS


def _failed(
    s: Schedule, reason: str, disk_full: bool, now: float
) -> tuple[Schedule, tuple[Action, ...]]:
    actions: list[Action] = []
    if disk_full:
        s = _replace(s, space_wait=True)
    if reason != s.fault:
        actions.append(LogFault(reason))
        s = _replace(s, fault=reason)
    actions.append(ShowState("paused" if disk_full else "error", reason))
    return _retry_later(s, now), tuple(actions)
