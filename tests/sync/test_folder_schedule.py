"""The folder scheduler with plain values: events in, actions out, ``now`` passed in."""

from __future__ import annotations

from collections.abc import Sequence

from p2psync.sync import folder_schedule as fs
from p2psync.sync.folder_schedule import (
    CleanTemps,
    DropPartialsIfLow,
    LogFault,
    LogRecovered,
    MeasureSpace,
    Pull,
    PullResult,
    RunRound,
    Scan,
    Schedule,
    ShowState,
    SpaceReturned,
    StartWatcher,
    StopWatcher,
    Wake,
    next_deadline,
    step,
)
from p2psync.sync.folder_tuning import FolderTuning

TUNING = FolderTuning()
MiB = 1024 * 1024


def feed(s: Schedule, events: Sequence[tuple[float, fs.Event]]) -> tuple[Schedule, list]:
    actions: list = []
    for now, event in events:
        s, out = step(s, event, now)
        actions.extend(out)
    return s, actions


def idle(**settings) -> Schedule:
    """A folder after its first round: nothing wanted, no timers."""
    s = fs.initial(TUNING, **settings)
    s, _ = feed(
        s,
        [
            (0.0, fs.Started()),
            (0.0, fs.Woke()),
            (0.0, fs.Prepared()),
            (0.0, fs.Scanned(0)),
            (0.0, fs.Pulled(PullResult.NOTHING_NEEDED)),
            (0.0, fs.WorkDone(shown_paused=False, item_errors=False)),
            (0.0, fs.TempsCleaned()),
            (0.0, fs.ItemsSettled(disk_full=False)),
            (0.0, fs.RoundDone(failed=False)),
        ],
    )
    assert not (s.scan_full or s.scan_paths or s.pull_wanted)
    return s


# ---- the first round -------------------------------------------------------------------


def test_the_first_round_scans_everything_then_pulls() -> None:
    s = fs.initial(TUNING)
    s, actions = step(s, fs.Woke(), 0.0)
    assert actions == (RunRound(),)
    s, actions = step(s, fs.Prepared(), 0.0)
    assert actions == (Scan(full=True),)
    assert s.temps_to_clean and not s.scan_full
    s, actions = step(s, fs.Scanned(changed=0), 0.1)
    assert actions == (Pull(),)
    assert not s.pull_wanted


def test_a_scan_that_changed_something_pulls_even_if_no_pull_was_asked_for() -> None:
    s = idle()
    s, _ = step(s, fs.ScanRequested(full=False), 1.0)
    s, actions = step(s, fs.Prepared(), 1.0)
    assert actions == (Scan(full=False),)
    assert not s.temps_to_clean  # only a full scan makes temp files cleanable
    _, actions = step(s, fs.Scanned(changed=0), 1.0)
    assert actions == ()
    _, actions = step(s, fs.Scanned(changed=3), 1.0)
    assert actions == (Pull(),)


def test_an_idle_folder_sleeps_until_triggered() -> None:
    s = idle()
    assert next_deadline(s) is None
    _, actions = step(s, fs.Woke(), 5.0)
    assert actions == (RunRound(),)  # woken by hand: a round that finds nothing to do
    s, actions = step(s, fs.PullRequested(), 5.0)
    assert actions == (Wake(),) and s.pull_wanted
    s, actions = step(s, fs.ScanRequested(full=True), 5.0)
    assert actions == (Wake(),) and s.scan_full


# ---- bursts of peers' index updates ------------------------------------------------------


def test_a_burst_of_remote_updates_is_pulled_once_it_stops() -> None:
    s = idle()
    t = 10.0
    events: list[tuple[float, fs.Event]] = []
    for i in range(5):  # one update every 20 ms: each moves the pull 30 ms on
        events += [(t + i * 0.02, fs.RemoteUpdateBegan()), (t + i * 0.02, fs.RemoteUpdateEnded())]
    s, actions = feed(s, events)
    assert set(actions) == {Wake()}
    last = t + 4 * 0.02
    assert s.pull_due == last + TUNING.pull_debounce
    assert next_deadline(s) == s.pull_due
    s2, actions = step(s, fs.Woke(), last + 0.01)  # woken early: more may come
    assert actions == () and s2.pull_due == s.pull_due
    s3, actions = step(s, fs.Woke(), s.pull_due)
    assert actions == (RunRound(),)
    assert s3.pull_wanted and s3.pull_due is None and s3.burst_start is None


def test_an_update_being_stored_holds_the_pull() -> None:
    s = idle()
    s, _ = feed(
        s,
        [
            (1.0, fs.RemoteUpdateBegan()),
            (1.0, fs.RemoteUpdateEnded()),
            (1.02, fs.RemoteUpdateBegan()),
        ],
    )
    due = s.pull_due
    assert due == 1.0 + TUNING.pull_debounce
    s, actions = step(s, fs.Woke(), due)
    assert actions == ()  # the one in flight may belong to the same change
    assert s.pull_due == due + TUNING.pull_debounce
    s, actions = step(s, fs.RemoteUpdateEnded(), 1.05)
    s, actions = step(s, fs.Woke(), s.pull_due)
    assert actions == (RunRound(),)


def test_an_endless_burst_is_pulled_after_the_debounce_maximum() -> None:
    s = idle()
    start = 100.0
    now = start
    while now < start + 3 * TUNING.pull_debounce_max:
        s, _ = feed(s, [(now, fs.RemoteUpdateBegan()), (now, fs.RemoteUpdateEnded())])
        s, _ = step(s, fs.RemoteUpdateBegan(), now)  # always one more on its way
        s, actions = step(s, fs.Woke(), now + 0.01)
        if actions:
            break
        s, _ = step(s, fs.RemoteUpdateEnded(), now + 0.01)
        now += 0.01
    assert actions == (RunRound(),)
    assert start + TUNING.pull_debounce_max <= now + 0.01 < start + TUNING.pull_debounce_max + 0.05


def test_a_scan_asked_for_during_a_debounce_runs_at_once() -> None:
    s = idle()
    s, _ = feed(s, [(1.0, fs.RemoteUpdateBegan()), (1.0, fs.RemoteUpdateEnded())])
    s, _ = step(s, fs.ScanRequested(full=False), 1.001)
    s, actions = step(s, fs.Woke(), 1.01)
    assert actions == (RunRound(),)
    s, actions = step(s, fs.Prepared(), 1.01)
    assert actions == (Scan(full=False),)
    s, actions = step(s, fs.Scanned(0), 1.02)
    assert actions == ()  # the pull still waits for its debounce
    assert next_deadline(s) == 1.0 + TUNING.pull_debounce


# ---- scans and pulls -------------------------------------------------------------------


def test_paths_asked_for_while_pulling_are_scanned_then_pulled_again() -> None:
    s = idle()
    s, _ = step(s, fs.PullRequested(), 1.0)
    s, _ = step(s, fs.Woke(), 1.0)
    s, actions = step(s, fs.Prepared(), 1.0)
    assert actions == (Pull(),)
    s, _ = step(s, fs.ScanRequested(full=False), 1.5)  # the watcher, meanwhile
    s, actions = step(s, fs.Pulled(PullResult.DONE), 2.0)
    assert actions == (Wake(),) and s.pull_wanted and s.scan_paths
    s, actions = step(s, fs.Prepared(), 2.1)
    assert actions == (Scan(full=False),)
    s, actions = step(s, fs.Scanned(0), 2.2)
    assert actions == (Pull(),)


def test_conflict_copies_noted_by_the_pull_are_scanned_without_an_extra_wake() -> None:
    s = idle()
    s, _ = feed(s, [(1.0, fs.PullRequested()), (1.0, fs.Woke()), (1.0, fs.Prepared())])
    s, actions = step(s, fs.PathsNoted(), 1.2)
    assert actions == ()
    s, actions = step(s, fs.Pulled(PullResult.DONE), 1.3)
    assert actions == (Wake(),) and s.pull_wanted


def test_a_pull_that_should_go_again_wakes_the_loop() -> None:
    s = idle()
    s, _ = feed(s, [(1.0, fs.PullRequested()), (1.0, fs.Woke()), (1.0, fs.Prepared())])
    s, actions = step(s, fs.Pulled(PullResult.DONE, go_again=True), 1.3)
    assert actions == (Wake(),) and s.pull_wanted


def test_a_scan_that_fails_is_asked_for_again() -> None:
    s = idle()
    s, _ = feed(s, [(1.0, fs.ScanRequested(full=True)), (1.0, fs.Woke()), (1.0, fs.Prepared())])
    assert not s.scan_full
    s, _ = step(s, fs.ScanFailed(full=True), 1.1)
    assert s.scan_full
    s, _ = step(s, fs.ScanFailed(full=False), 1.1)
    assert s.scan_paths


def test_an_index_reset_scans_and_pulls_everything_without_a_wake() -> None:
    s, actions = step(idle(), fs.IndexReset(), 1.0)
    assert actions == () and s.scan_full and s.pull_wanted


def test_stale_temps_are_cleaned_only_when_nothing_holds_the_folder() -> None:
    s = fs.initial(TUNING)
    s, _ = feed(s, [(0.0, fs.Woke()), (0.0, fs.Prepared())])
    assert s.temps_to_clean
    assert step(s, fs.WorkDone(shown_paused=True, item_errors=False), 0)[1] == ()
    assert step(s, fs.WorkDone(shown_paused=False, item_errors=True), 0)[1] == ()
    _, actions = step(s, fs.WorkDone(shown_paused=False, item_errors=False), 0)
    assert actions == (CleanTemps(),)
    s, _ = step(s, fs.TempsCleaned(), 0)
    assert step(s, fs.WorkDone(shown_paused=False, item_errors=False), 0)[1] == ()


# ---- retries and backoff -----------------------------------------------------------------


def test_failed_rounds_back_off_and_triggers_wait_for_the_retry() -> None:
    s = idle()
    now = 0.0
    delays = []
    for _ in range(9):
        s, actions = step(s, fs.Failed(reason="index unwritable; retrying", disk_full=False), now)
        assert ShowState("error", "index unwritable; retrying") in actions
        assert s.retry_at is not None
        delays.append(s.retry_at - now)
        s, _ = step(s, fs.RoundDone(failed=True), now)
        s, actions = step(s, fs.PullRequested(), now + 0.1)
        s, actions = step(s, fs.Woke(), now + 0.2)
        assert actions == ()  # the trigger waits for the retry
        now = s.retry_at
        s, actions = step(s, fs.Woke(), now)
        assert actions == (RunRound(),)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_new_failure_reason_is_logged_once_and_recovery_once() -> None:
    s = idle()
    s, actions = step(s, fs.Failed(reason="r1", disk_full=False), 0.0)
    assert LogFault("r1") in actions
    s, actions = step(s, fs.Failed(reason="r1", disk_full=False), 2.0)
    assert not any(isinstance(a, LogFault) for a in actions)
    s, actions = step(s, fs.RoundDone(failed=False), 5.0)
    assert actions == (LogRecovered("r1"),) and s.fault == ""
    _, actions = step(s, fs.RoundDone(failed=False), 6.0)
    assert actions == ()


def test_pulled_items_reset_or_extend_the_backoff() -> None:
    s = idle()
    s, _ = feed(s, [(0.0, fs.RetryLater()), (1.0, fs.RetryLater())])
    assert s.retry_delay == 4
    s, _ = step(s, fs.Pulled(PullResult.SKIPPED), 3.0)
    assert s.retry_delay == 4  # held or send-only: nothing was tried
    s, _ = step(s, fs.Pulled(PullResult.DONE_WITH_ERRORS), 3.0)
    assert s.retry_at == 7.0 and s.retry_delay == 8
    s, _ = step(s, fs.Pulled(PullResult.NOTHING_NEEDED), 7.0)
    assert s.retry_delay == TUNING.retry_min


def test_a_retry_without_a_fault_does_not_hold_triggers() -> None:
    s, _ = step(idle(), fs.RetryLater(), 0.0)  # e.g. item errors
    s, _ = step(s, fs.PullRequested(), 0.1)
    _, actions = step(s, fs.Woke(), 0.2)
    assert actions == (RunRound(),)


# ---- pause -------------------------------------------------------------------------------


def paused(s: Schedule, on: bool) -> fs.Configured:
    return fs.Configured(paused=on, watcher=s.watcher, rescan_interval=s.rescan_interval)


def test_a_paused_folder_keeps_its_requests_until_resumed() -> None:
    s = idle()
    s, _ = step(s, paused(s, True), 1.0)
    s, _ = feed(s, [(1.1, fs.ScanRequested(full=True)), (1.1, fs.PullRequested())])
    s, actions = step(s, fs.Woke(), 1.2)
    assert actions == (ShowState("paused", fs.PAUSED_BY_USER),)
    s, _ = step(s, paused(s, False), 2.0)
    s, actions = step(s, fs.Woke(), 2.1)
    assert actions == (RunRound(),)
    _, actions = step(s, fs.Prepared(), 2.1)
    assert actions == (Scan(full=True),)


def test_a_pause_during_a_pull_lets_the_pull_finish_then_holds() -> None:
    s = idle()
    s, _ = feed(s, [(1.0, fs.PullRequested()), (1.0, fs.Woke()), (1.0, fs.Prepared())])
    s, _ = step(s, paused(s, True), 1.5)
    s, _ = step(s, fs.RemoteUpdateEnded(), 1.6)  # more arrived meanwhile
    s, actions = step(s, fs.Pulled(PullResult.DONE), 2.0)
    assert actions == ()
    s, actions = step(s, fs.Woke(), 5.0)
    assert actions == (ShowState("paused", fs.PAUSED_BY_USER),)


# ---- a full disk -------------------------------------------------------------------------


def test_a_full_disk_waits_for_free_space_then_goes_again() -> None:
    s = idle()
    s, actions = step(s, fs.Failed(reason="disk full; resumes", disk_full=True), 10.0)
    assert ShowState("paused", "disk full; resumes") in actions and s.space_wait
    s, actions = step(s, fs.RoundDone(failed=True), 10.0)
    assert actions == (DropPartialsIfLow(),)
    assert next_deadline(s) == min(s.retry_at, s.space_checked + TUNING.space_check_interval)
    s, actions = step(s, fs.Woke(), 10.5)
    assert actions == (MeasureSpace(),)  # the first look at once
    s, actions = step(s, fs.SpaceMeasured(free=6 * MiB), 10.5)
    assert actions == () and s.space_floor == 6 * MiB  # the retry is not due yet
    s, actions = step(s, fs.Woke(), 11.0)
    assert actions == (RunRound(),)  # the retry: still full
    s, _ = step(s, fs.Failed(reason="disk full; resumes", disk_full=True), 11.0)
    assert s.retry_at == 13.0
    s, actions = step(s, fs.Woke(), 12.0)
    assert actions == ()  # neither the retry nor a space check is due
    s = Schedule(**{**s.__dict__, "retry_at": 1000.0})  # a long backoff by now
    s, actions = step(s, fs.Woke(), 12.5)
    assert actions == (MeasureSpace(),) and s.space_checked == 12.5
    s, actions = step(s, fs.SpaceMeasured(free=5 * MiB), 12.5)
    assert actions == () and s.space_floor == 5 * MiB
    s, _ = step(s, fs.Woke(), 14.5)
    s, actions = step(s, fs.SpaceMeasured(free=3 * MiB), 14.5)  # less: the new floor
    assert actions == () and s.space_floor == 3 * MiB
    s, _ = step(s, fs.Woke(), 16.5)
    s, actions = step(s, fs.SpaceMeasured(free=3 * MiB + MiB), 16.5)
    assert actions == (SpaceReturned(4 * MiB), RunRound())
    assert s.retry_delay == TUNING.retry_min and s.pull_wanted and s.retry_at is None


def test_items_that_no_longer_fail_for_a_full_disk_end_the_space_wait() -> None:
    s, _ = step(idle(), fs.ItemsSettled(disk_full=True), 1.0)
    assert s.space_wait
    s, _ = step(s, fs.SpaceMeasured(free=7), 1.0)
    s, _ = step(s, fs.ItemsSettled(disk_full=False), 2.0)
    assert not s.space_wait and s.space_floor is None
    _, actions = step(s, fs.RoundDone(failed=False), 2.0)
    assert actions == ()


def test_a_full_disk_behind_a_pause_or_a_held_pull_is_not_waited_for() -> None:
    s, _ = step(idle(), fs.ItemsSettled(disk_full=True, shown=False), 1.0)
    assert not s.space_wait
    s, _ = step(s, fs.ItemsSettled(disk_full=True), 2.0)
    s, _ = step(s, fs.ItemsSettled(disk_full=True, shown=False), 3.0)
    assert s.space_wait  # kept as it was


# ---- periodic scans and the watcher ---------------------------------------------------------


def test_periodic_scans_count_from_the_last_one() -> None:
    s = fs.initial(TUNING, rescan_interval=60.0)
    s, _ = step(s, fs.Started(), 100.0)
    s = idle_from(s)
    assert next_deadline(s) == 160.0
    s, actions = step(s, fs.Woke(), 160.0)
    assert actions == (RunRound(),) and s.scan_full
    assert next_deadline(s) == 220.0
    s = idle_from(s)
    # a long round: the periodic scan that fell in it happens after it, once
    s, _ = step(s, fs.Woke(), 290.0)
    assert s.scan_full and s.last_periodic_scan == 280.0
    # a changed interval counts from the last periodic scan at once
    s, _ = step(s, fs.Configured(paused=False, watcher=False, rescan_interval=10.0), 291.0)
    assert next_deadline(s) == 290.0
    s, _ = step(s, fs.Configured(paused=False, watcher=False, rescan_interval=0.0), 291.0)
    assert next_deadline(s) is None


def idle_from(s: Schedule) -> Schedule:
    s = Schedule(**{**s.__dict__, "scan_full": False, "scan_paths": False, "pull_wanted": False})
    return s


def test_the_watcher_starts_once_and_again_after_a_failure_or_new_settings() -> None:
    s = fs.initial(TUNING, watcher=True)
    s, actions = step(s, fs.Prepared(), 0.0)
    assert actions == (StartWatcher(), Scan(full=True))
    s = idle_from(s)
    _, actions = step(s, fs.Prepared(), 1.0)
    assert actions == ()
    s, actions = step(s, fs.WatcherFailed(), 2.0)
    assert actions == ()  # no wake-up: the retry comes with backoff
    assert s.scan_full and not s.watching and s.retry_at == 2.0 + TUNING.retry_min
    s, actions = step(s, fs.Prepared(), 3.0)
    assert actions == (StartWatcher(), Scan(full=True))
    s, actions = step(s, fs.WatcherSettingsChanged(), 4.0)
    assert actions == (StopWatcher(), Wake()) and s.scan_full and not s.watching
    s, _ = step(s, fs.Configured(paused=False, watcher=False, rescan_interval=0), 4.0)
    _, actions = step(s, fs.Prepared(), 5.0)
    assert actions == (Scan(full=True),)


def test_smaller_tunings_apply() -> None:
    tuning = FolderTuning(retry_min=0.1, retry_max=0.3, pull_debounce=0.5, pull_debounce_max=0.6)
    s = fs.initial(tuning)
    s, _ = feed(s, [(0.0, fs.RetryLater()), (0.0, fs.RetryLater()), (0.0, fs.RetryLater())])
    assert s.retry_delay == 0.3
    s, _ = feed(s, [(1.0, fs.RemoteUpdateEnded()), (1.4, fs.RemoteUpdateEnded())])
    assert s.pull_due == 1.6
