"""The scan workloads (f, h) for p2psync, in process: ``scan()`` into a fresh IndexStore.

Run as ``python -m bench.inproc {scan|rescan} ROOT DB``; prints one JSON line. It does
what the folder runner does for a full scan (hash on two threads, store each batch with
``update_local`` while the next one is scanned) without the daemon around it, so the figure is the scanner + index
alone. ``rescan`` scans once untimed, then times a second scan of the unchanged tree.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from p2psync.fs.basic import BasicFS
from p2psync.identity import generate_identity
from p2psync.index.store import IndexStore
from p2psync.protocol.fileinfo import LocalFileInfo
from p2psync.scanner.scan import scan
from p2psync.sync.scan_round import IndexView

FOLDER = "bench"


def scan_into(store: IndexStore, root: Path, short_id: int) -> tuple[int, int]:
    """One full scan stored in ``store``; returns (entries stored, bytes hashed). Like the
    folder runner, a batch is stored while the scanner works on the next one."""
    stored = 0
    hashed = 0
    pending: Future[list[LocalFileInfo]] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="store") as storer:
        for batch in scan(
            BasicFS(root),
            IndexView(store, FOLDER),
            short_id=short_id,
            now=lambda: int(time.time()),
            hash_workers=2,
        ):
            if batch.files:
                if pending is not None:
                    done = pending.result()
                    stored += len(done)
                    hashed += sum(f.size for f in done)
                pending = storer.submit(store.update_local, FOLDER, batch.files)
        if pending is not None:
            done = pending.result()
            stored += len(done)
            hashed += sum(f.size for f in done)
    return stored, hashed


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str]) -> dict[str, float]:
    mode, root, db = argv[0], Path(argv[1]), Path(argv[2])
    device = generate_identity().device_id
    out: dict[str, float] = {}
    with IndexStore.open(db, device.raw) as store:
        if mode == "rescan":
            t0 = time.monotonic()
            entries, _ = scan_into(store, root, device.short_id)
            out["initial_seconds"] = time.monotonic() - t0
            out["initial_entries"] = entries
        elif mode != "scan":
            raise SystemExit(f"unknown mode {mode!r}")
        cpu0 = _cpu()
        t0 = time.monotonic()
        entries, hashed = scan_into(store, root, device.short_id)
        out["seconds"] = time.monotonic() - t0
        out["cpu_s"] = _cpu() - cpu0
        out["entries"] = entries
        out["bytes_hashed"] = hashed
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
