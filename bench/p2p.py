"""Driving p2psync for the benchmark: a pair of daemons (through the CLI, as a user
would) and the in-process scanner for the scan workloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .daemon import Daemon, free_port
from .errors import WorkloadFailed
from .proxy import CountingProxy

FOLDER_ID = "bench"
CLI = [sys.executable, "-m", "p2psync.cli"]
START_TIMEOUT = 30.0
# --p2p-no-history: the home gets a directory where the change log's file would go, so
# the daemon cannot open the log and runs without it (its documented fallback).
NO_HISTORY_ENV = "P2PSYNC_BENCH_NO_HISTORY"


def daemon_env() -> dict[str, str]:
    return {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1", "PYTHONUNBUFFERED": "1"}


def _cli(home: Path, *args: str) -> None:
    proc = subprocess.run(
        [*CLI, "--home", str(home), *args],
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise WorkloadFailed(
            f"p2psync {' '.join(args[:2])} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-400:]}"
        )


class _Node:
    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.home = base / name / "home"
        self.data = base / name / "data"
        self.port = free_port()
        self.daemon: Daemon | None = None

    def init(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        _cli(
            self.home,
            "init",
            "--no-default-folder",
            "--no-mdns",
            "--listen",
            f"tcp://127.0.0.1:{self.port}",
            "--api",
            "127.0.0.1:0",
            "--name",
            self.name,
        )
        if os.environ.get(NO_HISTORY_ENV):
            from p2psync.history.log import HISTORY_FILE

            (self.home / HISTORY_FILE).mkdir()

    @property
    def device_id(self) -> str:
        from p2psync.identity import load_identity

        return str(load_identity(self.home).device_id)

    def share_with(self, other: _Node, via_port: int) -> None:
        _cli(
            self.home,
            "peer",
            "add",
            other.device_id,
            "--name",
            other.name,
            "--address",
            f"tcp://127.0.0.1:{via_port}",
        )
        _cli(
            self.home,
            "folder",
            "add",
            str(self.data),
            "--id",
            FOLDER_ID,
            "--share",
            other.device_id,
        )

    def set_folder_options(self, options: dict[str, object]) -> None:
        """Diagnosis only (``--p2p-folder-set``): override folder settings before start."""
        from dataclasses import replace

        from p2psync.config import load_config, save_config

        cfg = load_config(self.home)
        folder = cfg.folder(FOLDER_ID)
        assert folder is not None
        save_config(cfg.with_folder(replace(folder, **options)), self.home)  # type: ignore[arg-type]

    def launch(self) -> None:
        """Start the daemon process without waiting for it to be ready."""
        self.daemon = Daemon(
            f"p2psync-{self.name}", [*CLI, "--home", str(self.home), "run"], daemon_env(), self.home
        )

    def start(self) -> None:
        self.launch()
        log = self.home / "p2psync.log"
        self.daemon.wait_until(
            lambda: log.exists() and "ready:" in log.read_text(errors="replace"),
            START_TIMEOUT,
            "the 'ready:' log line",
        )


def _parallel(*fns) -> None:  # type: ignore[no-untyped-def]
    """Run the callables in threads; re-raise the first failure."""
    errors: list[BaseException] = []

    def wrap(fn):  # type: ignore[no-untyped-def]
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


class P2PSyncPair:
    """Two p2psync daemons sharing folder ``bench``; every byte between them passes a
    CountingProxy (each side dials the other through one)."""

    system = "p2psync"

    def __init__(
        self,
        base: Path,
        folder_options: dict[str, object] | None = None,
        *,
        start_source: bool = True,
    ) -> None:
        self.start_source_now = start_source
        self.a = _Node(base, "A")
        self.b = _Node(base, "B")
        self.a_dir, self.b_dir = self.a.data, self.b.data
        self.folder_options = folder_options or {}
        self._proxies: list[CountingProxy] = []

    def __enter__(self) -> P2PSyncPair:
        try:
            _parallel(self.a.init, self.b.init)
            to_b = CountingProxy(self.b.port).start()
            to_a = CountingProxy(self.a.port).start()
            self._proxies = [to_b, to_a]
            _parallel(
                lambda: self.a.share_with(self.b, to_b.port),
                lambda: self.b.share_with(self.a, to_a.port),
            )
            if self.folder_options:
                for node in (self.a, self.b):
                    node.set_folder_options(self.folder_options)
            if self.start_source_now:
                _parallel(self.a.start, self.b.start)
            else:
                self.b.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in (self.a, self.b):
            if node.daemon is not None:
                node.daemon.stop()
        for p in self._proxies:
            p.close()

    def start_source(self) -> None:
        """Condition (iii): start A (holding its data already) without waiting for it.

        A listens on a port picked now: the one picked at set-up may have been taken
        by another process meanwhile (the data went in between)."""
        from dataclasses import replace

        from p2psync.config import load_config, save_config

        self.a.port = free_port()
        cfg = load_config(self.a.home)
        save_config(replace(cfg, listen=(f"tcp://127.0.0.1:{self.a.port}",)), self.a.home)
        self._proxies[1].target_port = self.a.port  # B dials A through this one
        self.a.launch()

    @property
    def daemons(self) -> list[Daemon]:
        return [d for d in (self.a.daemon, self.b.daemon) if d is not None]

    def check_alive(self) -> None:
        for d in self.daemons:
            d.check_alive()

    def wire_bytes(self) -> int:
        return sum(p.total for p in self._proxies)

    def logs(self) -> list[Path]:
        return [self.a.home / "p2psync.log", self.b.home / "p2psync.log"]


def inprocess_scan(root: Path, work: Path, mode: str, timeout: float) -> dict[str, float]:
    """Run ``python -m bench.inproc MODE`` (a child, so its RSS/CPU are its own)."""
    db = work / "index.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inproc", mode, str(root), str(db)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise WorkloadFailed(
            f"in-process {mode} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


class P2PSyncSingle:
    """One p2psync daemon without peers, for the scan workloads measured from the outside
    (``--p2p-scan daemon``): the folder is added over the control API and the scans are
    followed through the folder view and the event stream, as Syncthing's are."""

    system = "p2psync"

    def __init__(self, base: Path) -> None:
        self.node = _Node(base, "S")
        self._client = None  # ApiClient once the daemon is ready

    def __enter__(self) -> P2PSyncSingle:
        try:
            self.node.init()
            self.node.start()
            from p2psync.api.client import ApiClient

            self._client = ApiClient.for_home(self.node.home)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.node.daemon is not None:
            self.node.daemon.stop()

    @property
    def pid(self) -> int:
        assert self.node.daemon is not None
        return self.node.daemon.pid

    def _api(self):  # type: ignore[no-untyped-def]
        if self._client is None:
            raise WorkloadFailed("the daemon's API is not open")
        return self._client

    def add_folder(self, path: Path) -> None:
        self._api().post("/api/folders", {"path": str(path), "id": FOLDER_ID})

    def wait_initial_scan(self, files: int, timeout: float) -> None:
        """Until the folder view says the initial scan is complete with ``files`` files."""
        deadline = time.monotonic() + timeout
        view: dict = {}
        while time.monotonic() < deadline:
            assert self.node.daemon is not None
            self.node.daemon.check_alive()
            view = self._api().get(f"/api/folders/{FOLDER_ID}")
            if view.get("initial_scan_done") and view["local"]["files"] == files:
                return
            time.sleep(0.02)
        raise WorkloadFailed(
            f"p2psync initial scan not complete after {timeout:.0f}s: "
            f"initial_scan_done={view.get('initial_scan_done')} local={view.get('local')}"
        )

    def rescan(self, timeout: float) -> None:
        """Request a full scan and wait for the event that says it is complete."""
        api = self._api()
        since = api.get("/api/events", params={"since": 0, "timeout": 0, "limit": 1})["last_id"]
        api.post(f"/api/folders/{FOLDER_ID}/scan")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = api.get(
                "/api/events",
                params={
                    "since": since,
                    "types": "ScanCompleted,LocalIndexUpdated",
                    "timeout": min(10.0, max(0.0, deadline - time.monotonic())),
                },
                timeout=30,
            )
            for event in got["events"]:
                since = max(since, event["id"])
                if event["data"].get("folder") == FOLDER_ID and event["data"].get("full"):
                    return
        raise WorkloadFailed(f"p2psync rescan not reported complete after {timeout:.0f}s")
