"""A folder's initial scan says how far it is and when it is complete (status and events),
and what it has hashed reaches the index (and so peers) before the whole scan ends."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import trio
from pull_support import FOLDER, LOCAL

from p2psync.config import FolderConfig
from p2psync.events import EventLog
from p2psync.fs import BasicFS
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.sync.folder_build import build_folder
from p2psync.sync.folder_tuning import FolderTuning

MiB = 1 << 20


class HeldFS(BasicFS):
    """Reading ``held`` waits (in the scanner's thread) until ``release`` is set."""

    def __init__(self, root: str, held: str) -> None:
        super().__init__(root)
        self.held = held
        self.reached = threading.Event()
        self.release = threading.Event()

    def open_read(self, name: str) -> Any:
        if name == self.held:
            self.reached.set()
            self.release.wait(30)
        return super().open_read(name)


async def _until(predicate: Any, what: str) -> None:
    with trio.fail_after(30):
        while not predicate():  # noqa: ASYNC110 (state of several objects)
            await trio.sleep(0.01)


async def test_initial_scan_reports_progress_and_completion(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    sizes = {"a.bin": 6 * MiB, "b.bin": 6 * MiB, "c.bin": 6 * MiB, "z.bin": MiB}
    for name, size in sizes.items():
        (root / name).write_bytes(os.urandom(size))
    fs = HeldFS(str(root), "z.bin")
    events = EventLog()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:

        async def no_sources(folder: str, name: str) -> list[Any]:
            return []

        folder = build_folder(
            FolderConfig(id=FOLDER, path=str(root), watcher=False, rescan_interval_s=0),
            index=index,
            local=DeviceID(LOCAL),
            db_limiter=trio.CapacityLimiter(1),
            sources_for=no_sources,
            events=events,
            fs=fs,
            tuning=FolderTuning(scan_progress_interval=0.02),
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(folder.run)
                await trio.to_thread.run_sync(fs.reached.wait, 30)

                # While z.bin is held: progress of the three files before it ...
                def reported() -> bool:
                    return any(
                        e.data["files_hashed"] == 3
                        for e in events.since(0, {"FolderScanProgress"}, limit=10_000)
                    )

                await _until(reported, "a progress event")
                (event,) = events.since(0, {"FolderScanProgress"}, limit=1)
                assert event.data["folder"] == FOLDER and event.data["initial"] is True
                assert not folder.status.initial_scan_done
                progress = folder.status.scan_progress
                assert progress is not None and progress.bytes_hashed == 18 * MiB
                # ... and they are in the index already (18 MiB > one batch's 16 MiB)
                await _until(lambda: index.counts(FOLDER).files >= 2, "the first batch stored")
                assert not events.since(0, {"InitialScanCompleted"})

                fs.release.set()
                await _until(lambda: folder.status.initial_scan_done, "the initial scan")
                (done,) = events.since(0, {"InitialScanCompleted"})
                assert done.data["files_hashed"] == 4
                assert done.data["bytes_hashed"] == 19 * MiB
                assert done.data["bytes_per_s"] > 0
                assert folder.status.scan_progress is None
                nursery.cancel_scope.cancel()
        finally:
            fs.release.set()
