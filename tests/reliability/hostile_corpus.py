"""The bad-input checklist (users-and-peers.md §5) as concrete wire bytes.

Each ``Case`` is one checklist item turned into the bytes a hostile peer would send
after a normal handshake. ``valid_*`` build a correct message as plain msgpack values
so a case changes exactly one thing. Also used by fuzz/make_corpus.py for seeds.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from p2psync.protocol import limits as L
from p2psync.protocol import wire_schema
from p2psync.protocol.connection import Connection
from p2psync.protocol.fileinfo import BlockInfo, FileInfo
from p2psync.protocol.messages import ClusterConfig, Hello, Index, MessageType, Request
from p2psync.protocol.vector import Counter

BS = 128 * 1024
DATA = bytes(range(256)) * 800  # 204,800 bytes: two blocks


def hello(name: str) -> Hello:
    return Hello(device_name=name, client_name="p2psync", client_version="test", timestamp=1)


def valid_file(name: str = "dir/file.bin") -> FileInfo:
    blocks = tuple(
        BlockInfo(o, len(DATA[o : o + BS]), hashlib.sha256(DATA[o : o + BS]).digest())
        for o in range(0, len(DATA), BS)
    )
    return FileInfo(
        name=name,
        size=len(DATA),
        version=(Counter(7, 3),),
        block_size=BS,
        blocks=blocks,
        sequence=1,
        modified_by=7,
        modified_ns=1_700_000_000 * 10**9,
    )


def valid_index_plain() -> dict[str, Any]:
    return wire_schema.to_plain(
        MessageType.INDEX, Index(folder="shared", files=(valid_file(),), last_sequence=1)
    )


def valid_request_plain() -> dict[str, Any]:
    return wire_schema.to_plain(
        MessageType.REQUEST,
        Request(id=1, folder="shared", name="dir/file.bin", offset=0, size=BS, hash=b"\x01" * 32),
    )


def frame(mtype: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, mtype) + payload


def packed(mtype: MessageType, plain: Any) -> bytes:
    return frame(mtype, msgpack.packb(plain, use_bin_type=True))


def with_file(**changes: Any) -> bytes:
    plain = valid_index_plain()
    plain["files"][0].update(changes)
    return packed(MessageType.INDEX, plain)


def with_name_bytes(raw: bytes) -> bytes:
    """An Index whose file name is raw bytes in a msgpack str (possibly not UTF-8)."""
    plain = valid_index_plain()
    marker = "N" * 16
    plain["files"][0]["name"] = marker
    body = msgpack.packb(plain, use_bin_type=True)
    old = msgpack.packb(marker)
    new = (bytes([0xA0 | len(raw)]) + raw) if len(raw) < 32 else (b"\xd9" + bytes([len(raw)]) + raw)
    return frame(MessageType.INDEX, body.replace(old, new, 1))


def with_request(**changes: Any) -> bytes:
    plain = valid_request_plain()
    plain.update(changes)
    return packed(MessageType.REQUEST, plain)


def blocks_changed(fn: Callable[[list], None]) -> bytes:
    plain = valid_index_plain()
    blocks = [list(b) for b in plain["files"][0]["blocks"]]
    fn(blocks)
    plain["files"][0]["blocks"] = blocks
    return packed(MessageType.INDEX, plain)


# 9. decoded size: frames within the byte limits whose decoded form is not (issue 17.3).
# Each repeats one small msgpack value: what it costs decoded, per byte, is in the name.
JUNK_ELEMENTS = {
    "maps bomb (empty maps, 72 B/B)": b"\x80",
    "one-key maps (64 B/B)": b"\x81\xa1a\xc0",
    "huge arrays of tiny negative ints (40 B/B)": b"\xe0",
    "one-element arrays (28 B/B)": b"\x91\x00",
    "2-char strings (24 B/B)": b"\xa2ab",
    "2-byte bins (14 B/B)": b"\xc4\x02ab",
}


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")


def junk_index(element: bytes, size: int) -> bytes:
    """An Index frame of about ``size`` bytes whose files are arrays of ``element``."""
    per = min(65_535, max(1, (size - 64) // len(element)))
    inner = _array_header(per) + element * per
    count = max(1, (size - 64) // len(inner))
    body = (
        b"\x83\xa6folder\xa6shared\xa5files"
        + _array_header(count)
        + inner * count
        + b"\xadlast_sequence\x01"
    )
    return frame(MessageType.INDEX, body)


def deep_nesting(size: int, levels: int = 1000) -> bytes:
    """An Index frame: ``levels`` nested array headers each claiming 65,535 entries,
    then small ints up to ``size`` (msgpack's own stack stops at 1,024 levels)."""
    body = b"\x83\xa6folder\xa6shared\xa5files" + b"\xdc\xff\xff" * levels
    return frame(MessageType.INDEX, body + b"\x00" * max(0, size - len(body) - 8))


def junk_response(size: int) -> bytes:
    """A Response (to nothing) carrying a maps bomb under a key the schema ignores."""
    inner = _array_header(65_535) + b"\x80" * 65_535
    count = max(1, (size - 64) // len(inner))
    body = (
        b"\x84\xa2id\x01\xa4data\xc4\x00\xa4code\x00\xa5extra"
        + _array_header(count)
        + inner * count
    )
    return frame(MessageType.RESPONSE, body)


def memory_bombs(size: int = L.MAX_FRAME_SIZE - 4096) -> dict[str, bytes]:
    """Each decoded-size attack as one frame of about ``size`` bytes."""
    bombs = {what: junk_index(element, size) for what, element in JUNK_ELEMENTS.items()}
    bombs["deep nesting (1,000 levels)"] = deep_nesting(size)
    bombs["Response with a maps bomb in an unknown key"] = junk_response(size)
    return bombs


@dataclass(frozen=True)
class Case:
    item: str  # checklist item: "1 path", "3 length", ...
    what: str
    data: bytes


def cases() -> list[Case]:
    c: list[Case] = []

    def add(item: str, what: str, data: bytes) -> None:
        c.append(Case(item, what, data))

    # 1. paths
    for name in [
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/..",
        "./a",
        "a/./b",
        "a/",
        "a//b",
        "",
        ".",
        "..",
        "a\\b",
        "..\\x",
        "a\x00b",
        "a\nb",
        "C:/x",
        "e\u0301",
        "x" * 4097,
    ]:
        add("1 path", f"name {name[:20]!r}{'...' if len(name) > 20 else ''}", with_file(name=name))
    add("1 path", "name not valid UTF-8", with_name_bytes(b"bad\xff\xfename"))
    add("1 path", "name with a surrogate escape", with_name_bytes(b"a\xed\xa0\x80b"))
    # 3. length fields
    hdr = struct.pack(">I", 0)
    add("3 length", "zero-length frame", hdr)
    add("3 length", "length 0xFFFFFFFF (negative as int32)", struct.pack(">IB", 0xFFFFFFFF, 1))
    add("3 length", "length one over the frame limit", struct.pack(">IB", L.MAX_FRAME_SIZE + 1, 1))
    add("3 length", "1 GB frame header", struct.pack(">IB", 1_000_000_000, 4))
    add("3 length", "truncated frame then EOF", packed(MessageType.INDEX, valid_index_plain())[:-7])
    add(
        "3 length",
        "compressed flag (LZ4 length lie)",
        frame(0x80 | 1, struct.pack(">I", 2**31) + b"\x00" * 16),
    )
    add(
        "3 length",
        "msgpack str header claiming 4 GiB",
        frame(1, b"\x81\xa6folder\xdb\xff\xff\xff\xff"),
    )
    add(
        "3 length",
        "msgpack array header claiming 4G items",
        frame(1, b"\x81\xa5files\xdd\xff\xff\xff\xff"),
    )
    add("3 length", "unknown message type 0x55", frame(0x55, msgpack.packb({})))
    add(
        "3 length",
        "trailing garbage after the msgpack body",
        frame(1, msgpack.packb(valid_index_plain(), use_bin_type=True) + b"\xc1"),
    )
    # 4. FileInfo invariants
    add("4 fileinfo", "deleted with blocks", with_file(deleted=True))
    add("4 fileinfo", "directory with size", with_file(type=1, blocks=[], block_size=0))
    add("4 fileinfo", "directory with blocks", with_file(type=1, size=0))
    add("4 fileinfo", "symlink with blocks", with_file(type=2, size=0, symlink_target="t"))
    add("4 fileinfo", "symlink without target", with_file(type=2, size=0, blocks=[], block_size=0))
    add("4 fileinfo", "file without blocks", with_file(blocks=[]))
    add("4 fileinfo", "size disagrees with blocks", with_file(size=len(DATA) + 1))
    add("4 fileinfo", "negative size", with_file(size=-1))
    add(
        "4 fileinfo",
        "block offsets not contiguous",
        blocks_changed(lambda b: b[1].__setitem__(0, BS + 1)),
    )
    add("4 fileinfo", "negative block offset", blocks_changed(lambda b: b[0].__setitem__(0, -1)))
    add(
        "4 fileinfo",
        "block larger than block size",
        blocks_changed(lambda b: b[0].__setitem__(1, BS * 2)),
    )
    add("4 fileinfo", "block size 1000 (not a power of two)", with_file(block_size=1000))
    add("4 fileinfo", "block size 64 KiB (below 128 KiB)", with_file(block_size=64 * 1024))
    add("4 fileinfo", "block size 32 MiB (above 16 MiB)", with_file(block_size=32 * 1024 * 1024))
    add(
        "4 fileinfo",
        "hash of 31 bytes",
        blocks_changed(lambda b: b[0].__setitem__(2, b"\x00" * 31)),
    )
    add(
        "4 fileinfo",
        "hash of 33 bytes",
        blocks_changed(lambda b: b[0].__setitem__(2, b"\x00" * 33)),
    )
    add(
        "4 fileinfo",
        "hash as a string, not bytes",
        blocks_changed(lambda b: b[0].__setitem__(2, "x" * 32)),
    )
    add("4 fileinfo", "empty version vector", with_file(version=[]))
    add("4 fileinfo", "version vector with a duplicate device", with_file(version=[[7, 3], [7, 4]]))
    add("4 fileinfo", "version vector not sorted", with_file(version=[[9, 1], [7, 4]]))
    add("4 fileinfo", "version counter of zero", with_file(version=[[7, 0]]))
    add("4 fileinfo", "negative version counter", with_file(version=[[7, -1]]))
    add(
        "4 fileinfo",
        "too many counters",
        with_file(version=[[i, 1] for i in range(1, L.MAX_COUNTERS + 2)]),
    )
    add("4 fileinfo", "bool where an int belongs", with_file(size=True))
    add("4 fileinfo", "unknown file type 9", with_file(type=9))
    add(
        "4 fileinfo",
        "missing field (no blocks key)",
        packed(
            MessageType.INDEX,
            {
                **valid_index_plain(),
                "files": [
                    {k: v for k, v in valid_index_plain()["files"][0].items() if k != "blocks"}
                ],
            },
        ),
    )
    # 5. requests (decoder level; the node-level ones are in test_rel_hostile_peer.py)
    add("5 request", "negative offset", with_request(offset=-1))
    add("5 request", "negative size", with_request(size=-1))
    add("5 request", "size above the maximum", with_request(size=L.MAX_REQUEST_SIZE + 1))
    add("5 request", "hash of 5 bytes", with_request(hash=b"short"))
    add("5 request", "name with '..'", with_request(name="../../etc/passwd"))
    add("5 request", "absolute name", with_request(name="/etc/shadow"))
    add("5 request", "id above int32", with_request(id=2**40))
    # 9. decoded size, small (seeds; test_rel_memory.py sends them full size to a daemon)
    for what, data in memory_bombs(16 * 1024).items():
        add("9 decoded size", what, data)
    return c


def steady_connection() -> Connection:
    """Our side after a normal handshake, ready for the hostile frame."""
    ours = Connection(hello("us"))
    theirs = Connection(hello("them"))
    ours.start()
    theirs.start()
    ours.receive_data(theirs._hello_bytes + theirs.send(ClusterConfig()))
    while ours.next_event().__class__.__name__ != "ClusterConfig":
        pass
    return ours


def valid_stream() -> bytes:
    """A well-formed stream from a peer: Hello, ClusterConfig, Index (for fuzz seeds)."""
    theirs = Connection(hello("them"))
    out = theirs.start() + theirs.send(ClusterConfig())
    out += theirs.send(
        Index(folder="shared", files=(valid_file(), valid_file("other.txt")), last_sequence=2)
    )
    return out


__all__ = ["Case", "cases", "steady_connection", "valid_stream"]
