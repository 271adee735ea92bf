"""A stock Syncthing process for interop tests: its own temp home, loopback only.

Listens on 127.0.0.1 only; global and local discovery, relays, NAT traversal, usage
reporting, upgrades and crash reporting are off. Configured through its REST API.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

SYNCTHING = shutil.which("syncthing")
API_KEY = "p2psync-interop-test-key"
T = TypeVar("T")

needs_syncthing = pytest.mark.skipif(
    SYNCTHING is None, reason="the Debian package syncthing is not installed (.ci/run installs it)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class SyncthingExited(AssertionError):
    """Syncthing stopped before its API answered (e.g. its GUI port was taken)."""


class StockSyncthing:
    def __init__(self, home: Path, name: str) -> None:
        self.home = home
        self.name = name
        self.gui_port = free_port()
        self.listen_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.device_id = ""
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.gui_port}",
            headers={"X-API-Key": API_KEY},
            timeout=10,
        )

    def configure(self) -> None:
        subprocess.run(
            [SYNCTHING, "generate", f"--home={self.home}", "--no-default-folder"],
            check=True,
            capture_output=True,
        )
        path = self.home / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        device = root.find("device")
        assert device is not None
        self.device_id = device.attrib["id"]
        device.set("name", self.name)
        gui = root.find("gui")
        assert gui is not None
        _set(gui, "address", f"127.0.0.1:{self.gui_port}")
        _set(gui, "apikey", API_KEY)
        options = root.find("options")
        assert options is not None
        for key, value in {
            "listenAddress": f"tcp://127.0.0.1:{self.listen_port}",
            "globalAnnounceEnabled": "false",
            "localAnnounceEnabled": "false",
            "relaysEnabled": "false",
            "natEnabled": "false",
            "urAccepted": "-1",
            "autoUpgradeIntervalH": "0",
            "startBrowser": "false",
            "crashReportingEnabled": "false",
            "setLowPriority": "false",
        }.items():
            _set(options, key, value)
        tree.write(path)

    def start(self) -> None:
        env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1", "STNODEFAULTFOLDER": "1"}
        log = (self.home / "syncthing.log").open("ab")
        self.proc = subprocess.Popen(
            [SYNCTHING, "serve", f"--home={self.home}", "--no-browser", "--no-restart",
             "--no-upgrade", "--skip-port-probing"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        wait_for(self._pings, 30, "Syncthing's REST API")

    def _pings(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SyncthingExited(f"syncthing exited with {self.proc.returncode}: {self.log()}")
        try:
            return self.client.get("/rest/system/ping").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()

    def log(self) -> str:
        return (self.home / "syncthing.log").read_text(errors="replace")[-4000:]

    # -- REST ------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any, *, timeout: float = 10) -> None:
        """POST ``body``; ``timeout`` for the answer (``/rest/db/scan`` answers once the
        scan is done)."""
        self.client.post(path, json=body, timeout=timeout).raise_for_status()

    def add_device(
        self, device_id: str, name: str, address: str = "dynamic", *, introducer: bool = False
    ) -> None:
        self.post(
            "/rest/config/devices",
            {"deviceID": device_id, "name": name, "addresses": [address], "introducer": introducer},
        )

    def devices(self) -> dict[str, dict]:
        return {d["deviceID"]: d for d in self.get("/rest/config/devices")}

    def add_folder(self, folder_id: str, path: Path, device_ids: list[str]) -> None:
        self.post(
            "/rest/config/folders",
            {
                "id": folder_id,
                "label": folder_id,
                "path": str(path),
                "type": "sendreceive",
                "devices": [{"deviceID": d} for d in [self.device_id, *device_ids]],
                "fsWatcherEnabled": False,
                "rescanIntervalS": 3600,
            },
        )


def _set(parent: ET.Element, tag: str, value: str) -> None:
    child = parent.find(tag)
    if child is None:
        child = ET.SubElement(parent, tag)
    child.text = value


@contextmanager
def stock_syncthing(home: Path, name: str = "stock") -> Iterator[StockSyncthing]:
    home.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        st = StockSyncthing(home / f"try-{attempt}", name)
        st.home.mkdir()
        st.configure()
        try:
            st.start()
            break
        except SyncthingExited:
            # Another process took one of the free ports between our probe and Syncthing's
            # bind (tests run side by side): try again with fresh ports.
            st.stop()
            if attempt == 2:
                raise
    try:
        yield st
    finally:
        st.stop()
