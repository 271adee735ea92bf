"""The default store: dicts in memory, with optional snapshots to a SQLite file.

The dicts are only touched from the trio thread (no awaits inside a method, so each call
is atomic). Snapshots copy the data on the loop, then write SQLite in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from p2psync.identity import DeviceID

from .base import MAX_ADDRESSES_PER_DEVICE, Record

SCHEMA_VERSION = 1


@dataclass
class _Device:
    seen: float
    # address -> (expires, position in its announcement)
    addresses: dict[str, tuple[float, int]] = field(default_factory=dict)
    # the last Record get() made, reused until an address lapses or the device announces
    # (so a caller can keep what it derived from the Record, e.g. the encoded answer)
    record: Record | None = None

    def live(self, now: float) -> list[str]:
        items = [(exp, pos, a) for a, (exp, pos) in self.addresses.items() if exp > now]
        return [a for _, _, a in sorted(items, key=lambda t: (-t[0], t[1]))]


@dataclass
class Snapshot:
    """Everything a MemoryStore holds, as plain data (what goes to and from SQLite)."""

    devices: dict[bytes, _Device] = field(default_factory=dict)
    replay: dict[bytes, tuple[int, float]] = field(default_factory=dict)  # ts, expires


class MemoryStore:
    """In-memory records with expiry by the caller's clock."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        data = snapshot or Snapshot()
        self._devices = data.devices
        self._replay = data.replay

    async def put(self, device: DeviceID, addresses: list[str], now: float, ttl: float) -> None:
        entry = self._devices.setdefault(device.raw, _Device(seen=now))
        entry.seen = now
        entry.record = None
        for position, address in enumerate(addresses):
            entry.addresses[address] = (now + ttl, position)
        for address in [a for a, (exp, _) in entry.addresses.items() if exp <= now]:
            del entry.addresses[address]
        for address in entry.live(now)[MAX_ADDRESSES_PER_DEVICE:]:
            del entry.addresses[address]

    async def get(self, device: DeviceID, now: float) -> Record | None:
        entry = self._devices.get(device.raw)
        if entry is None:
            return None
        record = entry.record
        if record is not None and now < record.valid_until:
            return record  # unchanged since the last get: the same object
        live = entry.live(now)
        if not live:
            del self._devices[device.raw]
            return None
        first_lapse = min(entry.addresses[a][0] for a in live)
        entry.record = Record(tuple(live), entry.seen, first_lapse)
        return entry.record

    async def size(self, now: float) -> int:
        # O(1): devices that lapsed since the last expire() sweep are still counted.
        return len(self._devices)

    async def ping(self) -> None:
        pass

    async def claim_timestamp(
        self, device: DeviceID, timestamp: int, now: float, keep: float
    ) -> bool:
        last = self._replay.get(device.raw)
        if last is not None and last[1] > now and timestamp <= last[0]:
            return False
        self._replay[device.raw] = (timestamp, now + keep)
        return True

    async def expire(self, now: float) -> int:
        dead = [d for d, e in self._devices.items() if not e.live(now)]
        for device in dead:
            del self._devices[device]
        for device in [d for d, (_, exp) in self._replay.items() if exp <= now]:
            del self._replay[device]
        return len(dead)

    async def aclose(self) -> None:
        pass

    def snapshot(self) -> Snapshot:
        """A copy of the data, safe to hand to a worker thread."""
        return Snapshot(
            devices={d: _Device(e.seen, dict(e.addresses)) for d, e in self._devices.items()},
            replay=dict(self._replay),
        )


def save_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Replace the file's contents with ``snapshot`` in one transaction (blocking)."""
    conn = sqlite3.connect(path)
    try:
        _ensure_schema(conn)
        with conn:
            conn.execute("DELETE FROM devices")
            conn.execute("DELETE FROM replay")
            conn.executemany(
                "INSERT INTO devices (device, seen, addresses) VALUES (?, ?, ?)",
                (
                    (d, e.seen, json.dumps({a: list(v) for a, v in e.addresses.items()}))
                    for d, e in snapshot.devices.items()
                ),
            )
            conn.executemany(
                "INSERT INTO replay (device, timestamp, expires) VALUES (?, ?, ?)",
                ((d, ts, exp) for d, (ts, exp) in snapshot.replay.items()),
            )
    finally:
        conn.close()


def load_snapshot(path: Path) -> Snapshot:
    """Read a snapshot written by save_snapshot; an absent file is an empty snapshot."""
    snapshot = Snapshot()
    if not path.exists():
        return snapshot
    conn = sqlite3.connect(path)
    try:
        _ensure_schema(conn)
        for device, seen, addresses in conn.execute("SELECT device, seen, addresses FROM devices"):
            parsed = {a: (float(v[0]), int(v[1])) for a, v in json.loads(addresses).items()}
            snapshot.devices[bytes(device)] = _Device(float(seen), parsed)
        for device, ts, expires in conn.execute("SELECT device, timestamp, expires FROM replay"):
            snapshot.replay[bytes(device)] = (int(ts), float(expires))
    finally:
        conn.close()
    return snapshot


def _ensure_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise sqlite3.DatabaseError(
            f"snapshot schema version {version} is not {SCHEMA_VERSION}; "
            "move the file away to start empty"
        )
    with conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS devices "
            "(device BLOB PRIMARY KEY, seen REAL NOT NULL, addresses TEXT NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS replay "
            "(device BLOB PRIMARY KEY, timestamp INTEGER NOT NULL, expires REAL NOT NULL)"
        )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
