"""Devices and folders waiting for the user's decision, persisted in the node home.

The daemon records an unknown device that connected (or a folder a peer offered) here;
the CLI lists them. A small JSON file written atomically: it is tiny, human-readable and
survives restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("p2psync.pending")

PENDING_FILE = "pending.json"
MAX_ENTRIES = 200
# Pending devices from one remote host (port ignored): a stranger minting identities
# fills only its own share of the list, never pushes out a device that asked earlier.
MAX_DEVICES_PER_HOST = 16


@dataclass(frozen=True)
class PendingDevice:
    device_id: str
    name: str
    address: str
    time: float  # last connection attempt
    first_seen: float = 0.0  # first attempt while pending (kept across attempts)


@dataclass(frozen=True)
class PendingFolder:
    folder_id: str
    label: str
    device_id: str
    time: float


class PendingStore:
    """Thread-safe store of pending devices and folders (keyed, bounded, atomic saves)."""

    def __init__(self, home: Path) -> None:
        self.path = home / PENDING_FILE
        self._thread_lock = threading.Lock()
        self._failing = False  # the last best-effort write failed (logged once)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise read-modify-write across threads *and* processes (the daemon and
        an offline CLI command may both edit the file)."""
        with self._thread_lock:
            fd = os.open(self.path.with_name(PENDING_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {"devices": {}, "folders": {}}
        if not isinstance(data, dict):
            return {"devices": {}, "folders": {}}
        data.setdefault("devices", {})
        data.setdefault("folders", {})
        return data

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{PENDING_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a partial file would only take more space
            raise

    def add_device(self, entry: PendingDevice) -> None:
        with self._lock():
            data = self._load()
            _admit_device(data["devices"], entry)
            self._save(data)

    def add_folder(self, entry: PendingFolder) -> None:
        with self._lock():
            data = self._load()
            data["folders"][f"{entry.folder_id}/{entry.device_id}"] = asdict(entry)
            _trim(data["folders"])
            self._save(data)

    def devices(self) -> list[PendingDevice]:
        with self._lock():
            return [PendingDevice(**v) for v in self._load()["devices"].values()]

    def folders(self) -> list[PendingFolder]:
        with self._lock():
            return [PendingFolder(**v) for v in self._load()["folders"].values()]

    def remove_device(self, device_id: str) -> None:
        with self._lock():
            data = self._load()
            if data["devices"].pop(device_id, None) is not None:
                self._save(data)

    def remove_folder(self, folder_id: str, device_id: str | None = None) -> None:
        with self._lock():
            data = self._load()
            keys = [
                k
                for k, v in data["folders"].items()
                if v["folder_id"] == folder_id
                and (device_id is None or v["device_id"] == device_id)
            ]
            for k in keys:
                del data["folders"][k]
            if keys:
                self._save(data)

    def try_add_device(self, entry: PendingDevice) -> bool:
        """``add_device`` for the daemon: a stranger's visit is not worth failing over (the
        home disk may be full); a failure is logged once until a write succeeds again."""
        return self._best_effort(self.add_device, entry)

    def try_add_folder(self, entry: PendingFolder) -> bool:
        """``add_folder`` for the daemon, best-effort like ``try_add_device``."""
        return self._best_effort(self.add_folder, entry)

    def _best_effort(self, add: Callable[[Any], None], entry: object) -> bool:
        try:
            add(entry)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot record pending devices/folders in %s: %s", self.path, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("recording pending devices/folders works again")
        self._failing = False
        return True


def _admit_device(table: dict[str, Any], entry: PendingDevice) -> None:
    """Record ``entry``; a device already listed keeps its first-seen time. When its host
    holds more than MAX_DEVICES_PER_HOST entries, or the list more than MAX_ENTRIES, the
    newest arrival of the host with the most entries goes: a flood of fresh identities
    evicts itself (newest strangers first), and whoever asked first stays listed."""
    old = table.get(entry.device_id)
    first = _first_seen(old) if old is not None else entry.time
    table[entry.device_id] = {**asdict(entry), "first_seen": first}
    if old is not None:
        return
    host = _host(entry.address)
    while True:
        hosts: dict[str, list[str]] = {}
        for key, value in table.items():
            hosts.setdefault(_host(value.get("address", "")), []).append(key)
        if len(hosts.get(host, ())) > MAX_DEVICES_PER_HOST:
            victims = hosts[host]
        elif len(table) > MAX_ENTRIES:
            most = max(len(keys) for keys in hosts.values())
            victims = [k for keys in hosts.values() if len(keys) == most for k in keys]
        else:
            return
        del table[max(victims, key=lambda k: (_first_seen(table[k]), k))]


def _first_seen(record: dict[str, Any]) -> float:
    return float(record.get("first_seen") or record.get("time") or 0.0)


def _host(address: str) -> str:
    """The remote host of ``tcp://host:port`` (the whole text if it does not parse)."""
    try:
        return urlsplit(address).hostname or address
    except ValueError:
        return address


def _trim(table: dict[str, Any]) -> None:
    if len(table) > MAX_ENTRIES:
        for key, _ in sorted(table.items(), key=lambda kv: kv[1]["time"])[
            : len(table) - MAX_ENTRIES
        ]:
            del table[key]
