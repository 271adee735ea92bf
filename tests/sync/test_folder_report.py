"""FolderReport: what a folder tells the user about items it could not apply."""

from __future__ import annotations

import errno
import logging
import sqlite3

import pytest

from p2psync.events import EventLog
from p2psync.protocol.fileinfo import FileInfo
from p2psync.sync.folder_report import FolderReport, failure_reason, settled_state
from p2psync.sync.pull import DISK_FULL


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


def test_a_failure_repeated_every_round_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    events = EventLog()
    report = FolderReport("f", events, not_synced_listed=10)
    caplog.set_level(logging.DEBUG, logger="p2psync.sync.folder")
    for _round in range(5):
        report.item_failed(FileInfo("a.txt"), "insufficient disk space")
    assert _info_lines(caplog) == ["f: a.txt not synced: insufficient disk space"]
    # every failure is still an event, and still in the debug log
    assert len(events.since(0, {"ItemFinished"})) == 5
    assert len(caplog.records) == 5


def test_a_new_reason_or_a_success_in_between_is_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = FolderReport("f", EventLog(), not_synced_listed=10)
    caplog.set_level(logging.INFO, logger="p2psync.sync.folder")
    report.item_failed(FileInfo("a.txt"), "insufficient disk space")
    report.item_failed(FileInfo("a.txt"), "permission denied")
    report.item_finished(FileInfo("a.txt"))
    report.item_failed(FileInfo("a.txt"), "permission denied")
    assert _info_lines(caplog) == [
        "f: a.txt not synced: insufficient disk space",
        "f: a.txt not synced: permission denied",
        "f: a.txt not synced: permission denied",
    ]


def test_the_memory_of_logged_failures_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    report = FolderReport("f", EventLog(), not_synced_listed=10, failures_remembered=3)
    caplog.set_level(logging.INFO, logger="p2psync.sync.folder")
    for i in range(10):
        report.item_failed(FileInfo(f"{i}.txt"), "full")
    assert len(report._failures_logged) <= 3
    assert len(_info_lines(caplog)) == 10


def test_a_kept_item_is_not_logged_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    events = EventLog()
    report = FolderReport("f", events, not_synced_listed=10)
    caplog.set_level(logging.INFO, logger="p2psync.sync.folder")
    report.keep_not_synced(FileInfo("a\\b"), "name not allowed here")
    report.keep_not_synced(FileInfo("a\\b"), "name not allowed here")
    # one warning (not an INFO "failed" line), and not again for the same reason
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert report.status.not_synced == {"a\\b": "name not allowed here"}
    assert [e.data["error"] for e in events.since(0)] == ["name not allowed here"] * 2


def test_the_shown_state_after_a_round_puts_the_most_important_reason_first() -> None:
    full = {"a": DISK_FULL, "b": "permission denied"}
    assert settled_state(True, "held", full, "/d") == ("paused", "paused by the user")
    assert settled_state(False, "held", full, "/d") == ("paused", "held")
    state, reason = settled_state(False, "", full, "/d")
    assert state == "paused" and reason.startswith(f"{DISK_FULL} on /d")
    assert settled_state(False, "", {"b": "x"}, "/d") == ("error", "1 items not in sync")
    assert settled_state(False, "", {}, "/d") == ("idle", "")


def test_a_failed_round_says_where_the_disk_is_full() -> None:
    on_folder = failure_reason(OSError(errno.ENOSPC, "No space left on device"), "/d")
    assert on_folder.startswith(f"{DISK_FULL} on /d")
    on_index = failure_reason(sqlite3.OperationalError("database or disk is full"), "/d")
    assert "for the index in the daemon's home" in on_index
    assert failure_reason(OSError(errno.EMFILE, "Too many open files"), "/d").endswith("; retrying")
