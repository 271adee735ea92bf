"""Shared fixtures for the protocol tests: sample messages, raw frames, connected pairs."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
from hypothesis import strategies as st

from p2psync.protocol import codec, wire_schema
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE, BlockInfo, FileInfo, FileType
from p2psync.protocol.messages import (
    Close,
    ClusterConfig,
    Compression,
    ConnectionClosed,
    DownloadProgress,
    ErrorCode,
    FileDownloadProgressUpdate,
    Folder,
    FolderDevice,
    FolderType,
    Hello,
    Index,
    IndexUpdate,
    Message,
    MessageType,
    Ping,
    Request,
    Response,
    UpdateType,
)
from p2psync.protocol.vector import make

KIB = 1024
DEV_A = bytes(range(32))
DEV_B = bytes(range(100, 132))
SHORT_A = int.from_bytes(DEV_A[:8], "big")
SHORT_B = int.from_bytes(DEV_B[:8], "big")


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hello(name: str = "alpha") -> Hello:
    return Hello(
        device_name=name, client_name="p2psync", client_version="0.1.0", timestamp=1_700_000_000
    )


def file_with_content(name: str, content: bytes, *, block_size: int = MIN_BLOCK_SIZE, **kw: Any):
    """A regular file whose blocks really tile ``content``."""
    blocks = tuple(
        BlockInfo(off, len(content[off : off + block_size]), sha(content[off : off + block_size]))
        for off in range(0, max(len(content), 1), block_size)
    )
    fields: dict[str, Any] = {
        "version": make([(SHORT_A, 1_700_000_001)]),
        "sequence": 1,
        "modified_ns": 1_700_000_000_123_456_789,
        "modified_by": SHORT_A,
    }
    fields.update(kw)
    return FileInfo(name=name, size=len(content), block_size=block_size, blocks=blocks, **fields)


def sample_files() -> tuple[FileInfo, ...]:
    v = make([(SHORT_A, 1_700_000_005), (SHORT_B, 1_700_000_002)])
    two_blocks = file_with_content("docs/two blocks.bin", b"x" * (MIN_BLOCK_SIZE + 10))
    return (
        two_blocks,
        file_with_content("empty.txt", b"", sequence=2),
        file_with_content("ünïcødé/日本語.txt", b"hello", permissions=0o600, sequence=3),
        FileInfo("docs", type=FileType.DIRECTORY, permissions=0o755, version=v, sequence=4),
        FileInfo("link", type=FileType.SYMLINK, symlink_target="../outside/target", version=v),
        FileInfo("gone.txt", deleted=True, version=v, sequence=6, modified_by=SHORT_B),
        FileInfo("ignored.bin", invalid=True, size=10, sequence=7),  # invalid: no blocks needed
        file_with_content(
            "big", b"y" * 300, block_size=16 * KIB * KIB, no_permissions=True, sequence=8
        ),
    )


def sample_messages() -> list[Message]:
    """One or more of every framed message type, with interesting values."""
    files = sample_files()
    return [
        ClusterConfig(
            folders=(
                Folder(
                    id="default",
                    label="Default Folder",
                    type=FolderType.SEND_RECEIVE,
                    devices=(
                        FolderDevice(
                            id=DEV_A,
                            name="alpha",
                            addresses=("tcp://127.0.0.1:22000", "dynamic"),
                            max_sequence=42,
                            index_id=2**64 - 1,
                        ),
                        FolderDevice(
                            id=DEV_B,
                            name="beta",
                            compression=Compression.ALWAYS,
                            cert_name="p2psync",
                            introducer=True,
                            skip_introduction_removals=True,
                        ),
                    ),
                ),
                Folder(id="photos", label="", type=FolderType.RECEIVE_ONLY, paused=True),
            )
        ),
        ClusterConfig(),
        Index(folder="default", files=files, last_sequence=8),
        Index(folder="default", files=(), last_sequence=0),
        IndexUpdate(folder="default", files=files[:2], prev_sequence=8, last_sequence=10),
        Request(
            id=7,
            folder="default",
            name="docs/two blocks.bin",
            offset=MIN_BLOCK_SIZE,
            size=10,
            hash=sha(b"x" * 10),
            from_temporary=True,
            block_no=1,
        ),
        Response(id=7, data=b"x" * 10),
        Request(id=8, folder="default", name="empty.txt", offset=0, size=0, hash=sha(b"")),
        Response(id=8, code=ErrorCode.NO_SUCH_FILE),
        DownloadProgress(
            folder="default",
            updates=(
                FileDownloadProgressUpdate(
                    UpdateType.APPEND,
                    "docs/two blocks.bin",
                    make([(SHORT_A, 5)]),
                    (0, 3, 1),
                    MIN_BLOCK_SIZE,
                ),
                FileDownloadProgressUpdate(UpdateType.FORGET, "old.bin"),
            ),
        ),
        Ping(),
        Close(reason="shutting down"),
    ]


# -- raw frames (bypassing every check, to play a hostile peer) ----------------------------


def raw_frame(mtype: int, payload: bytes) -> bytes:
    return struct.pack(">IB", 1 + len(payload), mtype) + payload


def raw_message(mtype: MessageType, plain: Any) -> bytes:
    return raw_frame(mtype, msgpack.packb(plain, use_bin_type=True))


def plain_of(message: Message) -> dict[str, Any]:
    return wire_schema.to_plain(codec.message_type(message), message)


# -- connections -----------------------------------------------------------------------


def drain(conn: Connection) -> list[object]:
    """Every event currently decodable, up to NEED_DATA or ConnectionClosed."""
    events: list[object] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events
        events.append(ev)
        if isinstance(ev, ConnectionClosed):
            return events


class Pair:
    """Two connections joined by a fake link: what one sends, the other receives."""

    def __init__(self) -> None:
        self.a = Connection(hello("alpha"))
        self.b = Connection(hello("beta"))

    def other(self, conn: Connection) -> Connection:
        return self.b if conn is self.a else self.a

    def transfer(self, sender: Connection, message: Message) -> list[object]:
        receiver = self.other(sender)
        receiver.receive_data(sender.send(message))
        return drain(receiver)

    def handshake(self) -> Pair:
        self.b.receive_data(self.a.start())
        self.a.receive_data(self.b.start())
        assert drain(self.a) == [self.b.our_hello]
        assert drain(self.b) == [self.a.our_hello]
        assert self.transfer(self.a, ClusterConfig()) == [ClusterConfig()]
        assert self.transfer(self.b, ClusterConfig()) == [ClusterConfig()]
        return self


def steady_receiver() -> tuple[Connection, Connection]:
    """(receiver, sender) after Hellos and ClusterConfigs; the receiver has Request 7 out."""
    pair = Pair().handshake()
    pair.transfer(pair.a, Request(7, "default", "x", 0, 1, sha(b"x")))
    return pair.a, pair.b


def receiver_for(messages: list[Message]) -> tuple[Connection, bytes]:
    """A connection ready to receive ``messages`` from a peer, and the bytes it sent:
    its Hello, its ClusterConfig and the Requests that the messages' Responses answer."""
    conn = Connection(hello("alpha"))
    out = [conn.start(), conn.send(ClusterConfig())]
    for m in messages:
        if isinstance(m, Response):
            out.append(conn.send(Request(m.id, "default", "x", 0, 1, sha(b"x"))))
    return conn, b"".join(out)


def stream_of(messages: list[Message]) -> tuple[bytes, list[object]]:
    """The bytes a peer sends for ``messages`` (its Hello first) to ``receiver_for(messages)``,
    and the events they decode to."""
    sender = Connection(hello("beta"))
    _, their_bytes = receiver_for(messages)
    sender.receive_data(their_bytes)
    drain(sender)
    data = [sender.start(), *(sender.send(m) for m in messages)]
    return b"".join(data), [sender.our_hello, *messages]


def chunks(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` cut at ``cuts``; empty pieces are dropped (b"" would mean EOF)."""
    prev = 0
    for c in [*sorted(cuts), len(data)]:
        if data[prev:c]:
            yield data[prev:c]
        prev = max(prev, c)


# -- hypothesis strategies for valid values ----------------------------------------------

NAME_PART = st.text(
    alphabet=st.characters(
        categories=("L", "N"), include_characters="-_ .", exclude_characters="/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..") and s[1:2] != ":")

names = (
    st.lists(NAME_PART, min_size=1, max_size=4)
    .map("/".join)
    .map(lambda s: __import__("unicodedata").normalize("NFC", s))
    .filter(lambda s: all(p not in ("", ".", "..") for p in s.split("/")) and s[1:2] != ":")
)
u64 = st.integers(0, 2**64 - 1)
vectors = st.dictionaries(u64, st.integers(1, 2**64 - 1), max_size=5).map(lambda d: make(d.items()))
nonempty_vectors = vectors.filter(bool)


@st.composite
def file_infos(draw: st.DrawFn) -> FileInfo:
    kind = draw(st.sampled_from(["file", "dir", "symlink", "deleted", "invalid"]))
    common: dict[str, Any] = {
        "name": draw(names),
        "permissions": draw(st.integers(0, 2**32 - 1)),
        "modified_ns": draw(st.integers(-(2**63), 2**63 - 1)),
        "modified_by": draw(u64),
        "no_permissions": draw(st.booleans()),
        "version": draw(nonempty_vectors),
        "sequence": draw(st.integers(0, 2**63 - 1)),
    }
    if kind == "file":
        bs = draw(st.sampled_from([MIN_BLOCK_SIZE << i for i in range(8)]))
        n = draw(st.integers(1, 4))
        last = draw(st.integers(1, bs))
        hashes = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=n, max_size=n))
        sizes = [bs] * (n - 1) + [last]
        blocks = tuple(
            BlockInfo(i * bs, s, h) for i, (s, h) in enumerate(zip(sizes, hashes, strict=True))
        )
        return FileInfo(size=sum(sizes), block_size=bs, blocks=blocks, **common)
    if kind == "dir":
        return FileInfo(type=FileType.DIRECTORY, **common)
    if kind == "symlink":
        target = draw(st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t))
        return FileInfo(type=FileType.SYMLINK, symlink_target=target, **common)
    if kind == "deleted":
        t = draw(st.sampled_from(list(FileType)))
        return FileInfo(type=t, deleted=True, **common)
    return FileInfo(invalid=True, size=draw(st.integers(0, 2**40)), **common)
