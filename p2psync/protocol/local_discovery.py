"""Syncthing's local discovery v4 packet, sans I/O.

A UDP datagram: the magic 0x2EA7D90B (big-endian) and a protobuf ``Announce``::

    message Announce { bytes id = 1; repeated string addresses = 2; int64 instance_id = 3; }

``id`` is the 32-byte device ID, ``addresses`` are URLs (an unspecified host means "the
packet's source address"), ``instance_id`` is chosen at each start (a new one means the
device restarted). The packet is not authenticated: it only hints where to dial; TLS
proves who answers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError

MAGIC = 0x2EA7D90B
OLD_MAGIC = 0x7D79BC40  # v0.13 and earlier: recognised, ignored
PORT = 21027
MAX_PACKET = 65507
MAX_ADDRESSES = 32
MAX_ADDRESS_CHARS = 2048


class LocalDiscoveryError(RemoteProtocolError):
    """Not a valid local discovery v4 packet."""


@dataclass(frozen=True, slots=True)
class Announce:
    device_id: bytes
    addresses: tuple[str, ...]
    instance_id: int


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 is sent as its two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def encode(announce: Announce) -> bytes:
    body = bytearray(_field(1, 2) + _varint(len(announce.device_id)) + announce.device_id)
    for address in announce.addresses:
        raw = address.encode()
        body += _field(2, 2) + _varint(len(raw)) + raw
    if announce.instance_id:
        body += _field(3, 0) + _varint(announce.instance_id)
    return struct.pack(">I", MAGIC) + bytes(body)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise LocalDiscoveryError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode(packet: bytes) -> Announce | None:
    """The announcement in ``packet``; None for an old-version packet."""
    if len(packet) < 4:
        raise LocalDiscoveryError("packet shorter than its magic")
    magic = struct.unpack_from(">I", packet)[0]
    if magic == OLD_MAGIC:
        return None
    if magic != MAGIC:
        raise LocalDiscoveryError(f"bad magic {magic:#010x}")
    data, pos = packet[4:], 0
    device_id, instance_id = b"", 0
    addresses: list[str] = []
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            if number == 3:
                instance_id = value - (1 << 64) if value >= 1 << 63 else value
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise LocalDiscoveryError("truncated field")
            chunk, pos = data[pos : pos + length], pos + length
            if number == 1:
                device_id = chunk
            elif number == 2 and len(addresses) < MAX_ADDRESSES:
                if len(chunk) <= MAX_ADDRESS_CHARS:
                    addresses.append(chunk.decode("utf-8", "replace"))
        elif wire_type == 5:
            pos += 4
        elif wire_type == 1:
            pos += 8
        else:
            raise LocalDiscoveryError(f"unsupported wire type {wire_type}")
    if pos > len(data):
        raise LocalDiscoveryError("truncated field")
    if len(device_id) != 32:
        raise LocalDiscoveryError("the announcement has no 32-byte device ID")
    return Announce(device_id, tuple(addresses), instance_id)
