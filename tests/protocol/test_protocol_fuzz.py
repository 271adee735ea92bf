"""Fuzzing the receive path: whatever the peer sends, only RemoteProtocolError escapes,
nothing hangs, and memory stays bounded. Whatever is accepted can be sent back unchanged."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_support import (
    chunks,
    drain,
    hello,
    plain_of,
    raw_frame,
    raw_message,
    receiver_for,
    sample_messages,
    stream_of,
)

from p2psync.errors import RemoteProtocolError
from p2psync.protocol import codec
from p2psync.protocol import limits as L
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import ClusterConfig, ConnectionClosed, Message, MessageType

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Small messages only, so each example is cheap (the big Index is covered elsewhere).
SMALL = [m for m in sample_messages() if len(codec.encode_message(m)) < 2000]


def steady(messages: list[Message]) -> Connection:
    """A receiver past the handshake, with the Requests out that ``messages`` answer."""
    conn, _ = receiver_for(messages)
    peer = Connection(hello("beta"))
    conn.receive_data(peer.start() + peer.send(ClusterConfig()))
    drain(conn)
    return conn


def feed_all(conn: Connection, parts: list[bytes], eof: bool = True) -> list[object]:
    """Feed ``parts``; return the events. Only RemoteProtocolError may escape."""
    events: list[object] = []
    for part in [*parts, *([b""] if eof else [])]:
        conn.receive_data(part)
        # Each next_event either consumes bytes or returns NEED_DATA/ConnectionClosed,
        # so this loop ends; the bound guards against a regression that would spin.
        for _ in range(len(part) + 10):
            ev = conn.next_event()
            if ev is NEED_DATA or isinstance(ev, ConnectionClosed):
                break
            events.append(ev)
        else:
            raise AssertionError("next_event neither consumed data nor asked for more")
    return events


def assert_resendable(events: list[object]) -> None:
    for ev in events:
        if isinstance(ev, ConnectionClosed) or ev.__class__.__name__ == "Hello":
            continue
        frame = codec.encode_message(ev)  # type: ignore[arg-type]
        assert codec.parse_frame(frame) == (ev, len(frame))


# -- random bytes ---------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_a_hello(data: bytes) -> None:
    try:
        feed_all(Connection(hello()), [data])
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=3))
def test_random_bytes_after_the_handshake(data: bytes, cuts: list[int]) -> None:
    try:
        assert_resendable(feed_all(steady([]), list(chunks(data, cuts))))
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.integers(0, 255), st.binary(max_size=300))
def test_random_payload_in_a_well_formed_frame(type_byte: int, payload: bytes) -> None:
    try:
        assert_resendable(feed_all(steady([]), [raw_frame(type_byte, payload)]))
    except RemoteProtocolError:
        pass


# -- mutated valid streams --------------------------------------------------------------------

BASE_MESSAGES = [ClusterConfig(), *SMALL]
BASE_STREAM, BASE_EVENTS = stream_of(BASE_MESSAGES)

mutations = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.integers(0, len(BASE_STREAM) - 1), st.integers(0, 7)),
        st.tuples(
            st.just("insert"), st.integers(0, len(BASE_STREAM)), st.binary(min_size=1, max_size=8)
        ),
        st.tuples(st.just("delete"), st.integers(0, len(BASE_STREAM)), st.integers(1, 8)),
        st.tuples(st.just("set"), st.integers(0, len(BASE_STREAM) - 1), st.integers(0, 255)),
        st.tuples(st.just("truncate"), st.integers(0, len(BASE_STREAM)), st.just(0)),
    ),
    min_size=1,
    max_size=4,
)


def apply(data: bytes, ops: list[tuple[str, int, Any]]) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        pos = min(pos, len(buf))
        if op == "flip" and pos < len(buf):
            buf[pos] ^= 1 << arg
        elif op == "set" and pos < len(buf):
            buf[pos] = arg
        elif op == "insert":
            buf[pos:pos] = arg
        elif op == "delete":
            del buf[pos : pos + arg]
        elif op == "truncate":
            del buf[pos:]
    return bytes(buf)


@FUZZ
@given(mutations, st.lists(st.integers(0, len(BASE_STREAM)), max_size=3))
def test_mutated_stream_fails_only_with_remote_protocol_error(
    ops: list[tuple[str, int, Any]], cuts: list[int]
) -> None:
    data = apply(BASE_STREAM, ops)
    conn, _ = receiver_for(BASE_MESSAGES)
    try:
        events = feed_all(conn, list(chunks(data, cuts)))
    except RemoteProtocolError:
        return
    assert_resendable(events)


def test_unmutated_base_stream_decodes() -> None:
    conn, _ = receiver_for(BASE_MESSAGES)
    assert feed_all(conn, [BASE_STREAM]) == BASE_EVENTS


# -- mutated msgpack values -------------------------------------------------------------------

edge_ints = st.sampled_from(
    [0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 131072, 32]
)
edge_strs = st.sampled_from(["", ".", "..", "../x", "/abs", "a\x00b", "e\u0301", "a\\b", "C:x"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    edge_ints,
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    edge_strs,
    st.text(max_size=12),
    st.binary(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def mutate_somewhere(data: st.DataObject, plain: Any) -> Any:
    """Replace, delete or add one value at a random place in ``plain`` (in place)."""
    parent: Any = None
    key: Any = None
    node = plain
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        parent, key = (
            node,
            data.draw(
                st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
            ),
        )
        node = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    new = data.draw(values)
    if parent is None:
        return new if action == "replace" else plain
    if action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=10))] = new
    elif action == "add":
        parent.insert(key, new)
    else:
        parent[key] = new
    return plain


@FUZZ
@given(st.sampled_from(SMALL), st.data())
def test_mutated_values_are_rejected_or_resendable(message: Message, data: st.DataObject) -> None:
    plain = plain_of(message)
    for _ in range(data.draw(st.integers(1, 3))):
        plain = mutate_somewhere(data, plain)
    conn = steady([message])
    try:
        frame = raw_message(codec.message_type(message), plain)
        events = feed_all(conn, [frame], eof=False)
    except RemoteProtocolError:
        return
    assert len(events) == 1
    assert_resendable(events)


# -- bounded memory and time ----------------------------------------------------------------


def peak_bytes(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
    except RemoteProtocolError:
        pass
    else:
        raise AssertionError("expected a RemoteProtocolError")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_4_gib_length_fails_from_its_four_bytes_alone() -> None:
    conn = steady([])
    conn.receive_data(b"\xff\xff\xff\xff")  # nothing follows: no wait, no allocation
    assert peak_bytes(conn.next_event) < 64 * 1024


def test_a_huge_hello_length_fails_before_its_body() -> None:
    conn = Connection(hello())
    conn.receive_data(struct.pack(">IH", L.MAGIC, 0xFFFF))
    assert peak_bytes(conn.next_event) < 64 * 1024


def test_a_frame_just_under_the_limit_only_buffers_what_arrived() -> None:
    conn = steady([])
    conn.receive_data(struct.pack(">IB", L.MAX_FRAME_SIZE, MessageType.RESPONSE) + b"\x83")
    tracemalloc.start()
    assert conn.next_event() is NEED_DATA
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 1024


def test_container_header_bombs_stay_bounded() -> None:
    """Nested array headers each claiming the maximum length: msgpack stops at its depth
    limit; the transient allocation stays below ~80 MiB and is freed on the error."""
    header = b"\xdd" + struct.pack(">I", 65_536)
    for payload in (header * 1000, header * 50_000, (b"\xde\x00\x40") * 50_000):
        conn = steady([])
        conn.receive_data(raw_frame(MessageType.INDEX, payload))
        assert peak_bytes(conn.next_event) < 96 * 1024 * 1024


def test_length_claims_beyond_the_payload_fail_without_allocating() -> None:
    claims = [
        b"\xdd\xff\xff\xff\xff",  # array of 4G entries
        b"\xdf\xff\xff\xff\xff",  # map of 4G entries
        b"\xc6\x00\xff\xff\xff",  # 16 MiB of bin, absent
        b"\xdb\x00\x00\x10\x00",  # 1 MiB of str, absent
    ]
    for payload in claims:
        conn = steady([])
        conn.receive_data(raw_frame(MessageType.INDEX, payload))
        assert peak_bytes(conn.next_event) < 1024 * 1024
