"""The default store: one bytes blob per device in a dict, optionally snapshotted to SQLite.

A device's blob is ``valid_until, seen, count`` (``_HEAD``), one expiry per address
(doubles, newest first) and the lookup answer's JSON (``base.encode_answer``), so a
lookup slices the answer out without decoding anything, and a device costs its dict slot,
its 32-byte key and one bytes object (about 300 B with two addresses) instead of a Python
object per address. An announcement decodes the blob, merges and encodes it again.

The dict is only touched from the trio thread (no awaits inside a method, so each call
is atomic). Snapshots copy the dict on the loop, then write SQLite in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path

from p2psync.identity import DeviceID

from .base import MAX_ADDRESSES_PER_DEVICE, Record, encode_answer

SCHEMA_VERSION = 1
_HEAD = struct.Struct("<ddH")  # valid_until (the first expiry), seen, address count

Pair = tuple[str, float]  # address, expires


def pack(pairs: list[Pair], seen: float) -> bytes:
    """A device's blob for ``pairs`` (newest first, at least one)."""
    addresses = [a for a, _ in pairs]
    expiries = [e for _, e in pairs]
    return b"".join(
        (
            _HEAD.pack(min(expiries), seen, len(pairs)),
            struct.pack(f"<{len(pairs)}d", *expiries),
            encode_answer(addresses, seen),
        )
    )


def unpack(blob: bytes) -> tuple[float, list[Pair]]:
    """(seen, [(address, expires)] newest first) from a blob."""
    _, seen, count = _HEAD.unpack_from(blob)
    expiries = struct.unpack_from(f"<{count}d", blob, _HEAD.size)
    addresses = json.loads(blob[_HEAD.size + 8 * count :])["addresses"]
    return seen, list(zip(addresses, expiries, strict=True))


def merge(old: bytes | None, addresses: list[str], now: float, ttl: float) -> bytes | None:
    """``old`` (or nothing) with ``addresses`` announced at ``now``: those get ``now + ttl``
    (or keep a later expiry, so replicas that apply the same announcements in another
    order agree), lapsed ones go, the newest MAX_ADDRESSES_PER_DEVICE stay. None if
    nothing is live."""
    seen = now
    merged: dict[str, tuple[float, int]] = {}
    if old is not None:
        old_seen, pairs = unpack(old)
        seen = max(seen, old_seen)
        merged = {a: (e, i) for i, (a, e) in enumerate(pairs)}
    expires = now + ttl
    for position, address in enumerate(addresses):
        known = merged.get(address)
        if known is None or known[0] < expires:
            merged[address] = (expires, position)
    live = sorted(
        ((e, i, a) for a, (e, i) in merged.items() if e > now), key=lambda t: (-t[0], t[1])
    )
    if not live:
        return None
    return pack([(a, e) for e, _, a in live[:MAX_ADDRESSES_PER_DEVICE]], seen)


def lapse(blob: bytes, now: float) -> bytes | None:
    """``blob`` without the addresses lapsed at ``now``; None if none is left."""
    seen, pairs = unpack(blob)
    live = [(a, e) for a, e in pairs if e > now]
    return pack(live, seen) if live else None


@dataclass
class Snapshot:
    """Everything a MemoryStore holds, as plain data (what goes to and from SQLite)."""

    devices: dict[bytes, bytes] = field(default_factory=dict)  # raw device ID -> blob
    replay: dict[bytes, tuple[int, float]] = field(default_factory=dict)  # ts, expires


class MemoryStore:
    """In-memory records with expiry by the caller's clock."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        data = snapshot or Snapshot()
        self._devices = data.devices
        self._replay = data.replay

    async def put(self, device: DeviceID, addresses: list[str], now: float, ttl: float) -> None:
        self.put_nowait(device.raw, addresses, now, ttl)

    def put_nowait(self, raw: bytes, addresses: list[str], now: float, ttl: float) -> None:
        """``put`` by the raw device ID (what replication applies)."""
        blob = merge(self._devices.get(raw), addresses, now, ttl)
        if blob is None:
            self._devices.pop(raw, None)
        else:
            self._devices[raw] = blob

    async def get(self, device: DeviceID, now: float) -> Record | None:
        blob = self._devices.get(device.raw)
        if blob is None:
            return None
        valid_until, seen, count = _HEAD.unpack_from(blob)
        if now >= valid_until:
            blob = lapse(blob, now)  # type: ignore[assignment]
            if blob is None:
                del self._devices[device.raw]
                return None
            self._devices[device.raw] = blob
            valid_until, seen, count = _HEAD.unpack_from(blob)
        return Record(blob[_HEAD.size + 8 * count :], seen, valid_until)

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
        self.record_timestamp(device.raw, timestamp, now + keep)
        return True

    def record_timestamp(self, raw: bytes, timestamp: int, expires: float) -> None:
        """Remember ``timestamp`` as accepted for ``raw`` (a later one is never lowered)."""
        last = self._replay.get(raw)
        if last is None or last[0] <= timestamp:
            self._replay[raw] = (timestamp, expires)

    async def expire(self, now: float) -> int:
        devices = self._devices
        removed = 0
        for raw in [d for d, b in devices.items() if _HEAD.unpack_from(b)[0] <= now]:
            blob = lapse(devices[raw], now)
            if blob is None:
                del devices[raw]
                removed += 1
            else:
                devices[raw] = blob
        for raw in [d for d, (_, exp) in self._replay.items() if exp <= now]:
            del self._replay[raw]
        return removed

    async def aclose(self) -> None:
        pass

    def snapshot(self) -> Snapshot:
        """A copy of the data, safe to hand to a worker thread (the blobs are immutable)."""
        return Snapshot(devices=dict(self._devices), replay=dict(self._replay))


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
                ((d, *_snapshot_row(blob)) for d, blob in snapshot.devices.items()),
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
            parsed = sorted((-float(v[0]), int(v[1]), a) for a, v in json.loads(addresses).items())
            if parsed:
                pairs = [(a, -e) for e, _, a in parsed]
                snapshot.devices[bytes(device)] = pack(pairs, float(seen))
        for device, ts, expires in conn.execute("SELECT device, timestamp, expires FROM replay"):
            snapshot.replay[bytes(device)] = (int(ts), float(expires))
    finally:
        conn.close()
    return snapshot


def _snapshot_row(blob: bytes) -> tuple[float, str]:
    """(seen, addresses as JSON {address: [expires, position]}): the SQLite columns."""
    seen, pairs = unpack(blob)
    return seen, json.dumps({a: [e, i] for i, (a, e) in enumerate(pairs)})


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
