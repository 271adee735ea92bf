"""Workload j (issue 22.3): a folder of many small files (1,000,000 at full size) on a
running pair of one system.

Both devices hold the same tree before the folder is added (a folder seeded on both,
hard links of one master, so no data is written); both daemons run, watchers on. The
folder is then added on both, over each system's API, shared with the other:

* ``seconds``: from the folder's addition until A's initial scan is complete with every
  file (p2psync: the folder view's ``initial_scan_done``; Syncthing: idle with all
  local files);
* ``extra.in_sync_s``: until both devices agree that nothing is needed;
* ``extra.rescan_s``: a full rescan of the unchanged tree on A, requested over the API,
  until it is reported complete;
* ``extra.change_s``: one file replaced on A until B holds it (watchers);
* peak RSS of A and B over their lives.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from . import st
from .errors import WorkloadFailed
from .p2p import FOLDER_ID, _cli, _Node, _parallel
from .procstats import cpu_seconds, peak_rss
from .proxy import CountingProxy
from .trees import link_tree, wait_file

SUBDIR = "j"


def run_million(
    system: str, base: Path, master: Path, files: int, timeout: float
) -> dict[str, Any]:
    if system == "p2psync":
        return _P2P(base).run(master, files, timeout)
    if system == "syncthing":
        return _ST(base).run(master, files, timeout)
    raise WorkloadFailed(f"j runs on p2psync or syncthing, not {system}")


def _change(a_dir: Path, b_dir: Path, timeout: float) -> float:
    name = f"{SUBDIR}/changed-{os.urandom(4).hex()}.txt"
    content = os.urandom(64).hex().encode()
    tmp = a_dir.parent / "staged.tmp"
    tmp.write_bytes(content)
    t0 = time.monotonic()
    os.rename(tmp, a_dir / name)
    return wait_file(b_dir / name, content, timeout=timeout, what="j: one changed file") - t0


class _P2P:
    def __init__(self, base: Path) -> None:
        self.a, self.b = _Node(base, "A"), _Node(base, "B")
        self.proxies: list[CountingProxy] = []

    def run(self, master: Path, files: int, timeout: float) -> dict[str, Any]:
        from p2psync.api.client import ApiClient

        a, b = self.a, self.b
        clients: list[ApiClient] = []
        try:
            _parallel(a.init, b.init)
            to_b, to_a = CountingProxy(b.port).start(), CountingProxy(a.port).start()
            self.proxies = [to_b, to_a]
            for me, other, via in ((a, b, to_b), (b, a, to_a)):
                _cli(me.home, "peer", "add", other.device_id, "--name", other.name,
                     "--address", f"tcp://127.0.0.1:{via.port}")  # fmt: skip
                link_tree(master, me.data / SUBDIR)
            _parallel(a.start, b.start)
            clients = [ApiClient.for_home(n.home) for n in (a, b)]
            api_a, api_b = clients
            os.sync()
            cpu0 = cpu_seconds(a.daemon.pid)  # type: ignore[union-attr]
            t0 = time.monotonic()
            for api, me, other in ((api_a, a, b), (api_b, b, a)):
                api.post("/api/folders", {"path": str(me.data), "id": FOLDER_ID,
                                          "share": [other.device_id]})  # fmt: skip
            t_scan = _poll(
                lambda: (v := api_a.get(f"/api/folders/{FOLDER_ID}"))["initial_scan_done"]
                and v["local"]["files"] == files,
                timeout, "p2psync A's initial scan", a.daemon.check_alive,  # type: ignore[union-attr]
            )  # fmt: skip
            scan_cpu = cpu_seconds(a.daemon.pid) - cpu0  # type: ignore[union-attr]
            t_sync = _poll(
                lambda: all(
                    (v := api.get(f"/api/folders/{FOLDER_ID}"))["need_items"] == 0
                    and v["state"] == "idle" and v["local"]["files"] >= files
                    for api in clients
                ),
                timeout, "p2psync in sync", a.daemon.check_alive,  # type: ignore[union-attr]
            )  # fmt: skip
            rescan_s = self._rescan(api_a, timeout)
            change_s = _change(a.data, b.data, timeout)
            return {
                "seconds": t_scan - t0,
                "peak_rss": [peak_rss(n.daemon.pid) for n in (a, b)],  # type: ignore[union-attr]
                "cpu_s": [scan_cpu],
                "extra": {"in_sync_s": round(t_sync - t0, 2), "rescan_s": round(rescan_s, 2),
                          "change_s": round(change_s, 3), "files": files},
            }  # fmt: skip
        finally:
            for c in clients:
                c.close()
            for n in (a, b):
                if n.daemon is not None:
                    n.daemon.stop()
            for p in self.proxies:
                p.close()

    @staticmethod
    def _rescan(api: Any, timeout: float) -> float:
        since = api.get("/api/events", params={"since": 0, "timeout": 0, "limit": 1})["last_id"]
        t0 = time.monotonic()
        api.post(f"/api/folders/{FOLDER_ID}/scan")
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            got = api.get(
                "/api/events",
                params={"since": since, "types": "ScanCompleted,LocalIndexUpdated",
                        "timeout": min(10.0, max(0.0, deadline - time.monotonic()))},
                timeout=30,
            )  # fmt: skip
            for event in got["events"]:
                since = max(since, event["id"])
                if event["data"].get("folder") == FOLDER_ID and event["data"].get("full"):
                    return time.monotonic() - t0
        raise WorkloadFailed(f"p2psync rescan not reported complete after {timeout:.0f}s")


class _ST:
    def __init__(self, base: Path) -> None:
        self.a, self.b = st._STNode(base, "A"), st._STNode(base, "B")
        self.proxies: list[CountingProxy] = []

    def run(self, master: Path, files: int, timeout: float) -> dict[str, Any]:
        a, b = self.a, self.b
        try:
            for n in (a, b):
                n.generate()
                link_tree(master, n.data / SUBDIR)
            to_b, to_a = CountingProxy(b.port).start(), CountingProxy(a.port).start()
            self.proxies = [to_b, to_a]
            for n in (a, b):
                n.start()
            a.add_device(b, to_b.port)
            b.add_device(a, to_a.port)
            os.sync()
            cpu0 = cpu_seconds(a.daemon.pid)  # type: ignore[union-attr]
            t0 = time.monotonic()
            for n in (a, b):
                n.add_folder(n.data, [a.device_id, b.device_id])
            a.wait_scanned(files, timeout)
            t_scan = time.monotonic()
            scan_cpu = cpu_seconds(a.daemon.pid) - cpu0  # type: ignore[union-attr]
            for n in (a, b):
                n.wait_in_sync(timeout)
            t_sync = time.monotonic()
            r0 = time.monotonic()
            a.rest("POST", f"/rest/db/scan?folder={FOLDER_ID}", timeout=timeout)
            a.wait_scanned(files, timeout)
            rescan_s = time.monotonic() - r0
            change_s = _change(a.data, b.data, timeout)
            return {
                "seconds": t_scan - t0,
                "peak_rss": [peak_rss(n.daemon.pid) for n in (a, b)],  # type: ignore[union-attr]
                "cpu_s": [scan_cpu],
                "extra": {"in_sync_s": round(t_sync - t0, 2), "rescan_s": round(rescan_s, 2),
                          "change_s": round(change_s, 3), "files": files},
            }  # fmt: skip
        finally:
            for n in (a, b):
                if n.daemon is not None:
                    n.daemon.stop()
            for p in self.proxies:
                p.close()


def _poll(predicate: Any, timeout: float, what: str, alive: Any) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        if predicate():
            return time.monotonic()
        time.sleep(0.05)  # polling an API with a deadline
    raise WorkloadFailed(f"{what}: not done after {timeout:.0f}s")
