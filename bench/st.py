"""Driving stock Syncthing for the side-by-side figures, through its REST API.

Each instance lives in a temp home made by ``syncthing generate``; before its first
start the config is edited for loopback only (listen tcp://127.0.0.1:PORT, no global or
local discovery, relays, NAT/STUN, usage reporting, upgrades or crash reports, GUI on
127.0.0.1 with a known API key, normal CPU priority). Devices and folders are then added
over REST. Folder watcher delay is 1 s (default 10 s), as recorded in the report.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .daemon import Daemon, free_port
from .errors import BenchError, WorkloadFailed
from .proxy import CountingProxy

FOLDER_ID = "bench"
WATCHER_DELAY_S = 1
START_TIMEOUT = 30.0

# Recorded in the report, so a reader knows exactly what was compared.
SETTINGS = {
    "fsWatcherDelayS": WATCHER_DELAY_S,
    "setLowPriority": False,
    "process": "single (no monitor, STMONITORED=yes)",
    "listen": "tcp://127.0.0.1 only",
    "discovery/relays/NAT/UR/upgrades/crash reports": "off",
}

_OPTIONS = {
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "urAccepted": "-1",
    "autoUpgradeIntervalH": "0",
    "crashReportingEnabled": "false",
    "startBrowser": "false",
    "setLowPriority": "false",
}


def available() -> bool:
    return shutil.which("syncthing") is not None


def _env() -> dict[str, str]:
    # STMONITORED=yes: run the sync process itself, without the monitor parent that
    # `serve` otherwise forks (that monitor only restarts it; it would add ~17 MiB RSS).
    return {
        **os.environ,
        "STNOUPGRADE": "1",
        "STNORESTART": "1",
        "STNODEFAULTFOLDER": "1",
        "STMONITORED": "yes",
    }


class _STNode:
    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.home = base / name / "home"
        self.data = base / name / "data"
        self.port = free_port()
        self.gui_port = free_port()
        self.api_key = secrets.token_urlsafe(24)
        self.device_id = ""
        self.daemon: Daemon | None = None

    # ---- set-up before the first start ---------------------------------------------
    def generate(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("syncthing")
        if exe is None:
            raise BenchError("syncthing is not installed")
        proc = subprocess.run(
            [exe, "generate", "--home", str(self.home), "--no-default-folder"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        if proc.returncode != 0:
            raise WorkloadFailed(f"syncthing generate failed: {proc.stderr.strip()[-300:]}")
        for line in (proc.stdout + proc.stderr).splitlines():
            if "Device ID:" in line:
                self.device_id = line.split("Device ID:", 1)[1].strip()
        if not self.device_id:
            raise WorkloadFailed("syncthing generate printed no device ID")
        self._edit_config()

    def _edit_config(self) -> None:
        path = self.home / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        gui = root.find("gui")
        opts = root.find("options")
        if gui is None or opts is None:
            raise WorkloadFailed(f"unexpected syncthing config layout in {path}")
        gui.set("tls", "false")
        _set(gui, "address", f"127.0.0.1:{self.gui_port}")
        _set(gui, "apikey", self.api_key)
        for old in opts.findall("listenAddress"):
            opts.remove(old)
        ET.SubElement(opts, "listenAddress").text = f"tcp://127.0.0.1:{self.port}"
        for key, value in _OPTIONS.items():
            _set(opts, key, value)
        tree.write(path)

    # ---- running -------------------------------------------------------------------
    def launch(self) -> None:
        """Start the process without waiting for its REST API."""
        exe = shutil.which("syncthing") or "syncthing"
        self.daemon = Daemon(
            f"syncthing-{self.name}",
            [exe, "serve", "--no-browser", "--no-restart", "--home", str(self.home)],
            _env(),
            self.home,
        )

    def start(self) -> None:
        self.launch()
        assert self.daemon is not None
        self.daemon.wait_until(self._pong, START_TIMEOUT, "the REST API")

    def _pong(self) -> bool:
        try:
            return self.rest("GET", "/rest/system/ping", timeout=2).get("ping") == "pong"
        except (OSError, WorkloadFailed):
            return False

    def rest(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.gui_port}{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise WorkloadFailed(
                f"syncthing {method} {path}: HTTP {exc.code} {exc.read()[:200]!r}"
            ) from exc
        return json.loads(text) if text.strip() else {}

    def add_device(self, other: _STNode, via_port: int) -> None:
        self.rest(
            "POST",
            "/rest/config/devices",
            {
                "deviceID": other.device_id,
                "name": other.name,
                "addresses": [f"tcp://127.0.0.1:{via_port}"],
                "autoAcceptFolders": False,
            },
        )

    def add_folder(self, path: Path, devices: list[str], *, watcher: bool = True) -> None:
        self.rest(
            "POST",
            "/rest/config/folders",
            {
                "id": FOLDER_ID,
                "label": FOLDER_ID,
                "path": str(path),
                "type": "sendreceive",
                "devices": [{"deviceID": d} for d in devices],
                "rescanIntervalS": 3600,
                "fsWatcherEnabled": watcher,
                "fsWatcherDelayS": WATCHER_DELAY_S,
            },
        )

    def status(self) -> dict[str, Any]:
        return self.rest("GET", f"/rest/db/status?folder={FOLDER_ID}")

    def wait_in_sync(self, timeout: float) -> None:
        """The API agrees: nothing needed, folder idle (after the tree check)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.get("state") == "idle" and st.get("needTotalItems", 1) == 0:
                return
            if time.monotonic() > deadline:
                raise WorkloadFailed(
                    f"syncthing {self.name}: trees identical but /rest/db/status says "
                    f"state={st.get('state')} need={st.get('needTotalItems')}"
                )
            time.sleep(0.05)

    def wait_scanned(self, files: int, timeout: float) -> None:
        """Idle with ``files`` local files: the (initial) scan is complete."""
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while True:
            assert self.daemon is not None
            self.daemon.check_alive()
            st = self.status()
            if st.get("state") == "idle" and st.get("localFiles") == files:
                return
            if time.monotonic() > deadline:
                raise WorkloadFailed(
                    f"syncthing scan not complete after {timeout:.0f}s: state={st.get('state')} "
                    f"localFiles={st.get('localFiles')} of {files}"
                )
            time.sleep(0.02)


def _set(parent: ET.Element, tag: str, text: str) -> None:
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    el.text = text


class SyncthingPair:
    """Two Syncthing instances sharing folder ``bench`` through CountingProxies."""

    system = "syncthing"

    def __init__(self, base: Path, *, start_source: bool = True) -> None:
        self.start_source_now = start_source
        self.a = _STNode(base, "A")
        self.b = _STNode(base, "B")
        self.a_dir, self.b_dir = self.a.data, self.b.data
        self._proxies: list[CountingProxy] = []

    def __enter__(self) -> SyncthingPair:
        try:
            for n in (self.a, self.b):
                n.generate()
            to_b = CountingProxy(self.b.port).start()
            to_a = CountingProxy(self.a.port).start()
            self._proxies = [to_b, to_a]
            for n in (self.a, self.b):
                n.start()
            self.a.add_device(self.b, to_b.port)
            self.b.add_device(self.a, to_a.port)
            ids = [self.a.device_id, self.b.device_id]
            self.a.add_folder(self.a.data, ids)
            self.b.add_folder(self.b.data, ids)
            if not self.start_source_now:
                self._forget_source()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget_source(self) -> None:
        """Condition (iii): stop A (its config.xml now holds the device and the folder)
        and delete its database, so its next start is a first start with the folder
        configured, as p2psync's A after ``folder add``."""
        assert self.a.daemon is not None
        self.a.daemon.stop()
        self.a.daemon = None
        for db in self.a.home.glob("index-*.db"):
            shutil.rmtree(db, ignore_errors=True)

    def start_source(self) -> None:
        """Condition (iii): start A (holding its data already) without waiting for it,
        on ports picked now (those of its first start may have been taken since)."""
        self.a.port = free_port()
        self.a.gui_port = free_port()
        self.a._edit_config()
        self._proxies[1].target_port = self.a.port  # B dials A through this one
        self.a.launch()

    def close(self) -> None:
        for n in (self.a, self.b):
            if n.daemon is not None:
                n.daemon.stop()
        for p in self._proxies:
            p.close()

    @property
    def daemons(self) -> list[Daemon]:
        return [d for d in (self.a.daemon, self.b.daemon) if d is not None]

    def check_alive(self) -> None:
        for d in self.daemons:
            d.check_alive()

    def wire_bytes(self) -> int:
        return sum(p.total for p in self._proxies)

    def confirm(self, timeout: float = 30.0) -> None:
        self.b.wait_in_sync(timeout)


class SyncthingSingle:
    """One instance for the scan workloads (watcher off, like the in-process p2psync scan)."""

    system = "syncthing"

    def __init__(self, base: Path) -> None:
        self.node = _STNode(base, "S")

    def __enter__(self) -> SyncthingSingle:
        try:
            self.node.generate()
            self.node.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.node.daemon is not None:
            self.node.daemon.stop()

    @property
    def pid(self) -> int:
        assert self.node.daemon is not None
        return self.node.daemon.pid

    def add_folder(self, path: Path) -> None:
        self.node.add_folder(path, [self.node.device_id], watcher=False)

    def rescan(self, timeout: float) -> None:
        self.node.rest("POST", f"/rest/db/scan?folder={FOLDER_ID}", timeout=timeout)
