"""A Response's frame built around its data (codec.encode_message_buffers) is byte for
byte the plain encoder's, and the receiver's fast read of it (codec.parse_frame,
Connection over a ReceiveBuffer) accepts and rejects exactly what the generic msgpack
decoder does, with the same errors."""

from __future__ import annotations

import random
import struct
import tracemalloc

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_support import hello, raw_frame, receiver_for

from p2psync.errors import RemoteProtocolError
from p2psync.protocol import codec
from p2psync.protocol import limits as L
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import ClusterConfig, ErrorCode, MessageType, Response
from p2psync.protocol.receive_buffer import ReceiveBuffer

BOUNDARIES = [0, 1, 255, 256, 65_535, 65_536, codec.ZERO_COPY_DATA - 1, codec.ZERO_COPY_DATA]
sizes = st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 300_000))
ids = st.one_of(st.sampled_from([0, 127, 128, 255, 256, 65_535, 65_536, L.INT32_MAX]),
                st.integers(0, L.INT32_MAX))  # fmt: skip


@st.composite
def responses(draw: st.DrawFn) -> Response:
    code = draw(st.sampled_from(ErrorCode))
    size = draw(sizes) if code == ErrorCode.NO_ERROR else 0
    data = random.Random(draw(st.integers(0, 2**32))).randbytes(size)  # cheap to draw
    return Response(draw(ids), data, code)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_the_buffers_are_the_plain_frame(response: Response) -> None:
    buffers = codec.encode_message_buffers(response)
    frame = codec.encode_message(response)
    assert b"".join(buffers) == frame
    assert frame == raw_frame(MessageType.RESPONSE, msgpack.packb(
        {"id": response.id, "data": response.data, "code": int(response.code)}, use_bin_type=True
    ))  # fmt: skip
    if len(response.data) >= codec.ZERO_COPY_DATA:
        assert len(buffers) == 3 and buffers[1] is response.data  # not copied
    else:
        assert len(buffers) == 1
    assert codec.parse_frame(frame) == (response, len(frame))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(responses(), min_size=1, max_size=5), st.lists(st.integers(1, 200_000)))
def test_a_connection_reads_them_back_however_the_bytes_are_cut(
    messages: list[Response], cuts: list[int]
) -> None:
    messages = [Response(i, m.data, m.code) for i, m in enumerate(messages)]
    conn, _ = receiver_for(messages)
    peer = Connection(hello("beta"))
    conn.receive_data(peer.start() + peer.send(ClusterConfig()))
    assert conn.next_event() is not NEED_DATA and conn.next_event() == ClusterConfig()
    wire = b"".join(b"".join(codec.encode_message_buffers(m)) for m in messages)
    got: list[object] = []
    pos = 0
    for cut in [*cuts, len(wire)]:
        conn.receive_data(wire[pos : pos + cut])
        pos += cut
        while (event := conn.next_event()) is not NEED_DATA:
            got.append(event)
        if pos >= len(wire):
            break
    assert got == messages


def outcome(fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return ("error", str(exc))


def generic(payload: bytes) -> object:
    """What the msgpack decoder makes of a Response payload (the reference)."""
    return outcome(codec.decode_payload, MessageType.RESPONSE, payload)


def fast(payload: bytes) -> object:
    """What parse_frame and a Connection's buffer make of it."""
    frame = raw_frame(MessageType.RESPONSE, payload)
    parsed = outcome(codec.parse_frame, frame)
    buf = ReceiveBuffer()
    for i in range(0, len(frame), 7):  # many chunks
        buf.append(frame[i : i + 7])
    assert outcome(codec.parse_buffered, buf) == parsed
    if isinstance(parsed, tuple) and parsed[0] != "error":
        assert parsed[1] == len(frame)
        return parsed[0]
    return parsed


HOSTILE = [
    b"\x83\xa2id\xce\x80\x00\x00\x00\xa4data\xc4\x01x\xa4code\x00",  # id > INT32_MAX
    b"\x83\xa2id\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa4data\xc4\x00\xa4code\x00",
    b"\x83\xa2id\x01\xa4data\xc4\x01x\xa4code\x04",  # unknown code
    b"\x83\xa2id\x01\xa4data\xc4\x01x\xa4code\x01",  # an error with data
    b"\x83\xa2id\x01\xa4data\xc4\x01x\xa4code\x00\x00",  # a byte too many
    b"\x83\xa2id\x01\xa4data\xc4\x02x\xa4code\x00",  # bin longer than what follows
    b"\x83\xa2id\x01\xa4data\xc6\x01\x00\x00\x01",  # a bin over max_bin_len
    b"\x83\xa2id\x01\xa4data\xc6\x00\xff\xff\xff",  # 16 MiB claimed, absent
    b"\x83\xa2id\x01\xa4data\xc4\x01x\xa4cod\x00",  # the code key misspelt
    b"\x83\xa2id\x01\xa4data\xc4\x01x\xa4code\xc3",  # a boolean code
    b"\x83\xa2id\xd0\x01\xa4data\xc4\x01x\xa4code\x00",  # an int8 id (generic path)
    b"\x83\xa2id\xff\xa4data\xc4\x01x\xa4code\x00",  # a negative id
    b"\x83\xa2id\x01\xa4data\xa1x\xa4code\x00",  # data as a str
    b"\x84\xa2id\x01\xa4data\xc4\x01x\xa4code\x00\xa1z\x00",  # an extra key: accepted
    b"\x83\xa4data\xc4\x01x\xa2id\x01\xa4code\x00",  # another order: accepted
    b"\x83\xa2id\x01\xa4data\xc4",  # cut short
    b"\x83",
    b"",
]


def test_hostile_responses_get_the_generic_decoders_verdict() -> None:
    for payload in HOSTILE:
        assert fast(payload) == generic(payload), payload
    assert isinstance(generic(HOSTILE[0]), tuple)  # the cases do reach both verdicts
    assert isinstance(generic(HOSTILE[-4]), Response)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4),
       st.integers(-3, 3))  # fmt: skip
def test_mutated_responses_get_the_generic_decoders_verdict(
    response: Response, flips: list[tuple[int, int]], trim: int
) -> None:
    payload = bytearray(codec.encode_message(response)[codec.FRAME_HEADER.size :])
    if len(response.data) > 1000:  # mutate the frame's structure, not the block
        payload = bytearray(payload[:40] + payload[-40:]) if trim else payload
    for at, value in flips:
        if at < len(payload):
            payload[at] = value
    if trim > 0:
        payload += bytes(trim)
    elif trim < 0:
        del payload[trim:]
    assert fast(bytes(payload)) == generic(bytes(payload))


def test_a_response_frame_over_the_limit_fails_from_its_header() -> None:
    conn, _ = receiver_for([])
    peer = Connection(hello("beta"))
    conn.receive_data(peer.start() + peer.send(ClusterConfig()))
    conn.next_event()
    conn.next_event()
    conn.receive_data(struct.pack(">IB", L.MAX_FRAME_SIZE + 1, MessageType.RESPONSE))
    try:
        conn.next_event()
    except RemoteProtocolError as exc:
        assert "exceeds the limit" in str(exc)
    else:
        raise AssertionError("an oversized frame was accepted")


def test_the_receive_buffer_copies_ranges_across_chunks() -> None:
    data = bytes(range(256)) * 40
    buf = ReceiveBuffer()
    for i in range(0, len(data), 1000):
        buf.append(data[i : i + 1000])
    assert len(buf) == len(data)
    for start, size in [(0, 5), (995, 10), (0, len(data)), (3000, 1000), (10_000, 999)]:
        assert buf.copy(start, size) == data[start : start + size]
    whole_chunk = buf.copy(1000, 1000)
    assert whole_chunk is buf._chunks[1]  # exactly one chunk: handed out, not copied
    buf.consume(1500)
    assert len(buf) == len(data) - 1500 and buf.copy(0, 600) == data[1500:2100]
    assert bytes(buf.contiguous()) == data[1500:]
    buf.append(b"tail")
    assert bytes(buf.contiguous()) == data[1500:] + b"tail"
    buf.consume(len(buf) - 2)
    assert buf.copy(0, 10) == b"il" and bytes(buf.contiguous()) == b"il"
    buf.consume(2)
    assert not buf and buf.copy(0, 10) == b"" and buf.contiguous() == b""


def test_a_big_frame_decoded_the_generic_way_is_not_held_twice() -> None:
    """A frame that does not take the fast read (here: a Response with a key added
    later) is decoded from its chunks merged into one buffer, each chunk freed as it is
    merged: the frame, its decoded data and little else."""
    data = bytes(8 * 1024 * 1024)
    frame = raw_frame(
        MessageType.RESPONSE, msgpack.packb({"id": 0, "data": data, "code": 0, "x": 1})
    )
    conn, _ = receiver_for([Response(0, data)])
    peer = Connection(hello("beta"))
    conn.receive_data(peer.start() + peer.send(ClusterConfig()))
    conn.next_event()
    conn.next_event()
    tracemalloc.start()
    try:
        for i in range(0, len(frame), 256 * 1024):
            conn.receive_data(frame[i : i + 256 * 1024])  # a new chunk, as from the socket
            event = conn.next_event()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert event == Response(0, data)
    assert peak < 2.3 * len(data), f"{peak / len(data):.2f} times the data"
