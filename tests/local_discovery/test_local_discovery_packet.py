"""Syncthing's local discovery v4 packet (sans I/O)."""

from __future__ import annotations

import pytest

from p2psync.discovery.cache import AddressCache
from p2psync.discovery.local_v4 import CACHE_SOURCE, LocalDiscoveryV4
from p2psync.identity import DeviceID
from p2psync.protocol.local_discovery import Announce, LocalDiscoveryError, decode, encode

ID = bytes(range(32))


def test_the_packet_is_byte_exact() -> None:
    packet = encode(Announce(ID, ("tcp://0.0.0.0:22000",), 300))
    assert packet == (
        bytes.fromhex("2ea7d90b")
        + b"\x0a\x20" + ID
        + b"\x12\x13" + b"tcp://0.0.0.0:22000"
        + b"\x18\xac\x02"
    )  # fmt: skip
    assert decode(packet) == Announce(ID, ("tcp://0.0.0.0:22000",), 300)


def test_round_trip_and_unknown_fields() -> None:
    announce = Announce(ID, ("tcp://10.0.0.1:22000", "relay://r:22067/?id=X"), (1 << 63) - 1)
    assert decode(encode(announce)) == announce
    # a future field (number 9, varint) and a negative instance ID are tolerated
    packet = encode(Announce(ID, (), 0)) + b"\x48\x01" + b"\x18" + b"\xff" * 9 + b"\x01"
    assert decode(packet) == Announce(ID, (), -1)


@pytest.mark.parametrize(
    "packet",
    [
        b"\x2e\xa7",
        bytes.fromhex("deadbeef") + b"\x0a\x20" + ID,
        bytes.fromhex("2ea7d90b") + b"\x0a\x21" + ID,  # truncated
        bytes.fromhex("2ea7d90b") + b"\x0a\x10" + ID[:16],  # not 32 bytes
        bytes.fromhex("2ea7d90b") + b"\x0a\x20" + ID + b"\x18" + b"\xff" * 11,  # overlong
    ],
)
def test_malformed_packets_are_refused(packet: bytes) -> None:
    with pytest.raises(LocalDiscoveryError):
        decode(packet)


def test_an_old_version_packet_is_ignored() -> None:
    assert decode(bytes.fromhex("7d79bc40") + b"anything") is None


async def test_known_devices_are_cached_with_the_source_address_filled_in() -> None:
    cache = AddressCache()
    me, known, stranger = DeviceID(bytes(32)), DeviceID(ID), DeviceID(bytes([7]) * 32)
    local = LocalDiscoveryV4(
        device_id=me,
        get_addresses=lambda: ["tcp://0.0.0.0:22001"],
        cache=cache,
        is_known=lambda raw: raw == known.raw,
        targets=[],
    )
    addresses = ("tcp://0.0.0.0:22000", "tcp://:22001", "quic://0.0.0.0:22000", "tcp://h:1")
    local.handle(Announce(known.raw, addresses, 5), "192.0.2.4", now=0.0)
    local.handle(Announce(stranger.raw, ("tcp://0.0.0.0:1",), 6), "192.0.2.5", now=0.0)
    assert cache.addresses(known.raw, 1.0) == [
        "tcp://192.0.2.4:22000",
        "tcp://192.0.2.4:22001",
        "tcp://h:1",
    ]
    assert set(cache.sources(known.raw, 1.0).values()) == {CACHE_SOURCE}
    assert cache.addresses(stranger.raw, 1.0) == []
    assert cache.addresses(known.raw, 91.0) == []  # expired after 90 s
    assert decode(local.packet()) == Announce(me.raw, ("tcp://0.0.0.0:22001",), local.instance_id)
