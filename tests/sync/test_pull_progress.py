"""Byte progress of pulls (sync/progress.py) and the completion figures built on it."""

from __future__ import annotations

from p2psync.api.progress import completion_percent, eta_seconds
from p2psync.sync.progress import PullProgress


def test_bytes_count_as_they_land_and_until_the_record_is_flushed() -> None:
    p = PullProgress()
    p.begin("big", 1000)
    p.advance("big", 300)  # found locally
    p.advance("big", 200, b"peer-1")
    p.advance("big", 100, b"peer-2")
    p.advance("big", 100, b"peer-1")
    [f] = p.files()
    assert (f.done, f.local, f.sources) == (700, 300, {b"peer-1": 300, b"peer-2": 100})
    assert p.bytes_in_place() == 700 and p.pulled == 700
    p.end("big", applied=True)  # in place; its record waits for the next flush
    assert p.files() == [] and p.bytes_in_place() == 1000
    finished = p.finished()
    p.begin("later", 50)
    p.end("later", applied=True)  # finished after the flush began: still counted
    p.flushed(finished)
    assert p.bytes_in_place() == 50
    p.begin("failed", 10)
    p.advance("failed", 5, b"peer-1")
    p.end("failed", applied=False)  # nothing of a failed file stays counted
    assert p.bytes_in_place() == 50 and p.pulled == 705


def test_completion_and_eta() -> None:
    assert completion_percent(0, 0, 0) == 100.0
    assert completion_percent(1000, 250, 1) == 75.0
    assert completion_percent(1000, 0, 2) == 95.0  # only deletions or directories left
    assert eta_seconds(0, 0.0) == 0.0 and eta_seconds(100, 0.0) is None
    assert eta_seconds(1000, 250.0) == 4.0
