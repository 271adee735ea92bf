"""A frame is bounded by what it decodes into, not only by its bytes: 16 MiB of empty
maps used to become 1.2 GB of dicts. And a rejected frame leaves nothing behind: the
error the connection keeps holds a message, not the payload's objects."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import msgpack
import pytest

from p2psync.errors import LocalProtocolError, RemoteProtocolError
from p2psync.protocol import codec, metering, wire_schema
from p2psync.protocol import limits as L
from p2psync.protocol.connection import Connection
from p2psync.protocol.fileinfo import BlockInfo, FileInfo
from p2psync.protocol.messages import (
    ClusterConfig,
    DownloadProgress,
    FileDownloadProgressUpdate,
    Folder,
    FolderDevice,
    Hello,
    Index,
    IndexUpdate,
    MessageType,
    Response,
    UpdateType,
)
from p2psync.protocol.vector import Counter

MiB = 1024 * 1024


def array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")


def index_of_junk(element: bytes, size: int = L.MAX_FRAME_SIZE - 4096) -> bytes:
    """An Index payload whose files are arrays of 65,535 copies of ``element``."""
    inner = array_header(65_535) + element * 65_535
    count = size // len(inner)
    return (
        b"\x83\xa6folder\xa1x\xa5files"
        + array_header(count)
        + inner * count
        + b"\xadlast_sequence\x01"
    )


@contextmanager
def traced() -> Iterator[list[int]]:
    """[peak bytes allocated inside the block], without the cyclic GC running."""
    result: list[int] = []
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        gc.enable()


@pytest.mark.parametrize(
    "element",
    [b"\x80", b"\xe0", b"\x91\x00", b"\x81\xa1a\xc0", b"\xa2ab", b"\xc4\x02ab"],
    ids=["empty maps", "negative fixints", "one-element arrays", "one-key maps", "short str",
         "short bin"],
)  # fmt: skip
def test_a_frame_that_decodes_into_too_much_is_refused(element: bytes) -> None:
    payload = index_of_junk(element)
    with pytest.raises(RemoteProtocolError, match="decodes into more than 128 MiB"):
        codec.decode_payload(MessageType.INDEX, payload)


def test_the_largest_legitimate_index_still_decodes() -> None:
    """A full frame of block lists (the heaviest real Index per byte after small files)
    fits the budget: the bound refuses junk, not big folders."""
    bs = 128 * 1024
    files = tuple(
        FileInfo(
            name=f"video/{i:04d}.mp4",
            size=1300 * bs,
            version=(Counter(0x1234_5678_9ABC_DEF0, 3), Counter(0x2234_5678_9ABC_DEF0, 1)),
            sequence=i + 1,
            block_size=bs,
            blocks=tuple(
                BlockInfo(j * bs, bs, hashlib.sha256(b"%d/%d" % (i, j)).digest())
                for j in range(1300)
            ),
        )
        for i in range(290)
    )
    frame = codec.encode_message(Index("videos", files, 290))
    assert len(frame) > 16 * MiB
    message, used = codec.parse_frame(frame)  # type: ignore[misc]
    assert used == len(frame) and message == Index("videos", files, 290)


def test_a_small_frame_is_unpacked_without_metering() -> None:
    """Frames up to UNMETERED_PAYLOAD take msgpack's plain path; whatever they hold they
    stay below about 40 MB (here: the worst, 512 KiB of empty maps)."""
    payload = index_of_junk(b"\x80", L.UNMETERED_PAYLOAD)
    assert len(payload) <= L.UNMETERED_PAYLOAD
    with traced() as peak, pytest.raises(RemoteProtocolError, match="Index.files"):
        codec.decode_payload(MessageType.INDEX, payload)
    assert peak[0] < 45 * MiB


def test_a_rejected_payload_is_not_kept_alive_by_the_error() -> None:
    """The connection keeps the peer's error; neither the error nor the connection may
    keep the decoded payload (6,000 dicts a schema check rejects) alive."""
    files = msgpack.packb([{"name": f"f{i}"} for i in range(6_000)])
    body = b"\x83\xa6folder\xa1x\xa5files" + files + b"\xadlast_sequence\x01"
    frame = codec.FRAME_HEADER.pack(1 + len(body), MessageType.INDEX) + body
    ours, theirs = Connection(hello("us")), Connection(hello("them"))
    ours.start()
    theirs.start()
    ours.receive_data(theirs._hello_bytes + theirs.send(ClusterConfig()))
    ours.next_event()
    ours.next_event()
    ours.receive_data(frame)
    with traced() as peak:
        before = tracemalloc.get_traced_memory()[0]
        try:
            ours.next_event()
        except RemoteProtocolError as exc:
            kept = exc  # what a caller may keep (the adapter logs it, the connection too)
        else:
            raise AssertionError("the junk Index was accepted")
        left = tracemalloc.get_traced_memory()[0] - before
    assert "missing" in str(kept)
    assert peak[0] > 1 * MiB, "the test must decode something big"
    assert left < 64 * 1024, f"{left} bytes still allocated after the error"


def hello(name: str) -> Hello:
    return Hello(device_name=name, client_name="p2psync", client_version="test", timestamp=1)


def test_the_sender_counts_what_the_receiver_will_charge() -> None:
    """encode_message refuses what the receiver's metering would refuse, so its count
    (by formula for an Index's files) must equal the hooks' count for every message."""
    big = FileInfo(
        name="big.bin",
        size=3 * 128 * 1024,
        version=(Counter(1, 2), Counter(5, 1)),
        sequence=3,
        block_size=128 * 1024,
        blocks=tuple(BlockInfo(i * 128 * 1024, 128 * 1024, bytes([i]) * 32) for i in range(3)),
    )
    messages = [
        Index("f", (big, FileInfo(name="d", type=1, version=(Counter(1, 1),))), 3),
        IndexUpdate("f", (big,), 2, 3),
        Index("f", (), 0),
        ClusterConfig((Folder("f", devices=(FolderDevice(id=b"\1" * 32, addresses=("a", "b")),)),)),
        Response(1, b"data"),
        DownloadProgress("f", (FileDownloadProgressUpdate(UpdateType.APPEND, "x",
                                                          (Counter(1, 1),), (0, 1), 131072),)),
    ]  # fmt: skip
    for message in messages:
        mtype = codec.message_type(message)
        plain = wire_schema.to_plain(mtype, message)
        _, charged = metering.metered_unpackb(msgpack.packb(plain, use_bin_type=True))
        assert metering.plain_cost(mtype, plain) == charged, type(message).__name__


def test_the_sender_refuses_an_index_the_receiver_would_refuse() -> None:
    """Version vectors cost the most per byte: 1,000 files of 600 counters (6.8 MB, under
    the frame limit) decode into more than 128 MiB of objects."""
    files = tuple(
        FileInfo(name=f"f{i}", version=tuple(Counter(2**40 + c, 1) for c in range(600)),
                 sequence=i + 1, invalid=True)
        for i in range(1000)
    )  # fmt: skip
    with pytest.raises(LocalProtocolError, match="decodes into .* send smaller batches"):
        codec.encode_message(Index("f", files, 1000))
    plain = wire_schema.to_plain(MessageType.INDEX, Index("f", files, 1000))
    body = msgpack.packb(plain, use_bin_type=True)
    assert len(body) < L.MAX_FRAME_SIZE
    with pytest.raises(RemoteProtocolError, match="decodes into more than 128 MiB"):
        codec.decode_payload(MessageType.INDEX, body)
