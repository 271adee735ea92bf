"""A whole folder runner on the fake filesystem, in virtual time (trio's MockClock): its
timers — periodic rescans, the retry backoff — without waiting for them.

The clock jumps only once every task has been blocked for a while in real time, so the
runner's short worker-thread calls (index, filesystem) do not make it jump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2psync.config import FolderConfig
from p2psync.events import EventLog
from p2psync.fs import FakeFS
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.scanner.ignore import IGNORE_FILE_NAME
from p2psync.sync.folder_build import build_folder
from p2psync.sync.folder_tuning import FolderTuning

LOCAL = bytes(range(32))
FOLDER = "virtual"
SCANS = {"ScanCompleted", "LocalIndexUpdated"}


@pytest.fixture
def virtual_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.2)


async def no_sources(folder: str, name: str) -> list[Any]:
    return []


async def next_full_scan(events: EventLog, after: int) -> int:
    """Wait for the next full scan after event ``after``; its event id."""
    while True:
        found = await events.wait_since(after, SCANS, timeout=10**6)
        assert found, "no scan"
        for e in found:
            if e.data["full"]:
                return e.id
        after = found[-1].id


async def test_periodic_full_scans_keep_their_interval(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    fs = FakeFS()
    fs.mkdir("docs")
    with fs.open_write("docs/a.txt") as f:
        f.write_at(0, b"hello")
    events = EventLog()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        folder = build_folder(
            FolderConfig(id=FOLDER, path=str(root), watcher=False, rescan_interval_s=600),
            index=index,
            local=DeviceID(LOCAL),
            db_limiter=trio.CapacityLimiter(1),
            sources_for=no_sources,
            events=events,
            fs=fs,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(folder.run)
            last = await next_full_scan(events, 0)  # the first scan, at start
            assert index.get_local(FOLDER, "docs/a.txt") is not None
            times = [trio.current_time()]
            for _ in range(3):
                last = await next_full_scan(events, last)
                times.append(trio.current_time())
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert all(599 < gap < 601 for gap in gaps), gaps
            # a longer interval counts from the last periodic scan at once
            await trio.sleep(100)
            folder.update_config(
                FolderConfig(id=FOLDER, path=str(root), watcher=False, rescan_interval_s=3600)
            )
            await next_full_scan(events, last)
            assert 3599 < trio.current_time() - times[-1] < 3601
            nursery.cancel_scope.cancel()


async def test_a_bad_ignore_file_is_retried_with_backoff(
    tmp_path: Path, virtual_clock: trio.testing.MockClock
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / IGNORE_FILE_NAME).write_text("#include missing-file\n")
    events = EventLog()
    tuning = FolderTuning(retry_min=10.0, retry_max=80.0)
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        folder = build_folder(
            FolderConfig(id=FOLDER, path=str(root), watcher=False, rescan_interval_s=0),
            index=index,
            local=DeviceID(LOCAL),
            db_limiter=trio.CapacityLimiter(1),
            sources_for=no_sources,
            events=events,
            fs=FakeFS(),
            tuning=tuning,
        )
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            nursery.start_soon(folder.run)
            found = await events.wait_since(0, {"FolderStateChanged"}, timeout=10**6)
            while folder.status.state != "error":
                found = await events.wait_since(found[-1].id, {"FolderStateChanged"}, 10**6)
            assert "bad ignore file" in folder.status.reason
            # retries 10, 20, 40, 80, 80 ... s apart: at 10, 30, 70, 150, 230, 310 s
            await trio.sleep_until(start + 200)
            assert folder.status.state == "error"
            (root / IGNORE_FILE_NAME).write_text("*.tmp\n")
            while folder.status.state != "idle":
                found = await events.wait_since(found[-1].id, {"FolderStateChanged"}, 10**6)
            assert 230 <= trio.current_time() - start < 231
            nursery.cancel_scope.cancel()
