"""The pending-device list is bounded, and a flood of strangers (fresh identities are
cheap) evicts itself: the newest strangers go first, each host has its own share, and a
real device that asked first stays listed."""

from __future__ import annotations

import os
from pathlib import Path

from p2psync.identity import DeviceID
from p2psync.pending import MAX_DEVICES_PER_HOST, MAX_ENTRIES, PendingDevice, PendingStore


def stranger(i: int, host: str, when: float) -> PendingDevice:
    return PendingDevice(str(DeviceID(os.urandom(32))), f"s{i}", f"tcp://{host}:{40000 + i}", when)


def real_device() -> PendingDevice:
    return PendingDevice(str(DeviceID(os.urandom(32))), "laptop", "tcp://192.0.2.10:22000", 1.0)


def listed(store: PendingStore) -> set[str]:
    return {d.device_id for d in store.devices()}


def test_a_flood_from_one_host_keeps_the_device_that_asked_first(tmp_path: Path) -> None:
    store = PendingStore(tmp_path)
    real = real_device()
    store.add_device(real)
    for i in range(205):
        store.add_device(stranger(i, "192.0.2.66", 2.0 + i))
    devices = store.devices()
    assert real.device_id in listed(store)
    from_flood = [d for d in devices if d.address.startswith("tcp://192.0.2.66:")]
    assert len(from_flood) == MAX_DEVICES_PER_HOST
    # the flood's first arrivals stay, its newest were refused
    assert {d.name for d in from_flood} == {f"s{i}" for i in range(MAX_DEVICES_PER_HOST)}


def test_a_flood_from_many_hosts_keeps_the_device_that_asked_first(tmp_path: Path) -> None:
    store = PendingStore(tmp_path)
    real = real_device()
    store.add_device(real)
    for i in range(205):
        store.add_device(stranger(i, f"198.51.100.{i % 250}", 2.0 + i))
    assert real.device_id in listed(store)
    assert len(store.devices()) == MAX_ENTRIES


def test_reconnecting_does_not_make_a_device_the_newest(tmp_path: Path) -> None:
    """The real device keeps dialling while it waits: its first-seen time is kept, so it
    never becomes the "newest" entry that the next stranger pushes out."""
    store = PendingStore(tmp_path)
    host = "203.0.113.5"  # the real device shares its host (NAT) with the flood
    real = PendingDevice(str(DeviceID(os.urandom(32))), "laptop", f"tcp://{host}:1", 1.0)
    store.add_device(real)
    for i in range(205):
        store.add_device(stranger(i, host, 2.0 + 2 * i))
        store.add_device(PendingDevice(real.device_id, "laptop", f"tcp://{host}:2", 3.0 + 2 * i))
    entry = next(d for d in store.devices() if d.device_id == real.device_id)
    assert entry.first_seen == 1.0 and entry.time == 3.0 + 2 * 204
    assert len(store.devices()) == MAX_DEVICES_PER_HOST


def test_an_old_file_without_first_seen_still_loads(tmp_path: Path) -> None:
    (tmp_path / "pending.json").write_text(
        '{"devices": {"X": {"device_id": "X", "name": "n", "address": "tcp://h:1", "time": 5.0}},'
        ' "folders": {}}'
    )
    store = PendingStore(tmp_path)
    store.add_device(stranger(0, "h", 6.0))
    assert "X" in listed(store) and len(store.devices()) == 2
