"""Every message survives a trip through two connections joined by a fake link."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_support import (
    Pair,
    chunks,
    drain,
    file_infos,
    hello,
    receiver_for,
    sample_messages,
    stream_of,
    vectors,
)

from p2psync.protocol import codec
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE
from p2psync.protocol.messages import (
    Close,
    ClusterConfig,
    ConnectionClosed,
    DownloadProgress,
    FileDownloadProgressUpdate,
    Index,
    Request,
    Response,
    UpdateType,
)
from p2psync.protocol.state import State


def test_hellos_cross_and_both_sides_see_the_other() -> None:
    pair = Pair()
    pair.b.receive_data(pair.a.start())
    pair.a.receive_data(pair.b.start())
    assert drain(pair.b) == [hello("alpha")]
    assert drain(pair.a) == [hello("beta")]
    assert pair.a.their_hello == hello("beta")
    assert pair.b.their_hello == hello("alpha")
    assert pair.a.state is State.AWAIT_CLUSTER_CONFIG


def test_hello_bytes_start_with_magic_and_length() -> None:
    data = Connection(hello()).start()
    assert data[:4] == bytes.fromhex("50325301")
    assert int.from_bytes(data[4:6], "big") == len(data) - 6


@pytest.mark.parametrize("message", sample_messages(), ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_every_message_type_round_trips(message: object, direction: str) -> None:
    pair = Pair().handshake()
    sender = pair.a if direction == "a->b" else pair.b
    receiver = pair.other(sender)
    if isinstance(message, Response):  # a Response answers a Request of the receiver
        pair.transfer(receiver, Request(message.id, "default", "x", 0, 1, b"h" * 32))
    events = pair.transfer(sender, message)
    assert events == [message]
    assert type(events[0]) is type(message)


def test_close_ends_the_conversation_cleanly() -> None:
    pair = Pair().handshake()
    assert pair.transfer(pair.a, Close("bye")) == [Close("bye")]
    assert pair.a.our_state is State.CLOSED
    assert pair.b.their_state is State.CLOSED
    assert pair.b.state is State.CLOSED
    pair.b.receive_data(b"")
    assert drain(pair.b) == [ConnectionClosed()]
    assert pair.b.next_event() == ConnectionClosed()  # repeatable


def test_states_advance_per_direction() -> None:
    pair = Pair()
    assert pair.a.state is State.AWAIT_HELLO
    pair.b.receive_data(pair.a.start())
    assert (pair.a.our_state, pair.a.their_state) == (State.AWAIT_CLUSTER_CONFIG, State.AWAIT_HELLO)
    pair.a.receive_data(pair.b.start())
    drain(pair.a)
    drain(pair.b)
    pair.transfer(pair.a, ClusterConfig())
    assert pair.a.our_state is State.STEADY
    assert pair.a.state is State.AWAIT_CLUSTER_CONFIG  # the peer has not sent its own yet
    pair.transfer(pair.b, ClusterConfig())
    assert pair.a.state is State.STEADY and pair.b.state is State.STEADY


def test_stream_split_at_every_byte_boundary_decodes_the_same() -> None:
    messages = [ClusterConfig(), *sample_messages()[4:]]
    data, expected = stream_of(messages)
    assert len(data) < 4000  # keeps this exhaustive test fast
    for cut in range(len(data) + 1):
        conn, _ = receiver_for(messages)
        events: list[object] = []
        for part in chunks(data, [cut]):
            conn.receive_data(part)
            events += drain(conn)
        assert events == expected, cut


def test_stream_fed_one_byte_at_a_time_decodes_the_same() -> None:
    data, expected = stream_of(sample_messages())
    conn, _ = receiver_for(sample_messages())
    events: list[object] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        ev = conn.next_event()
        while ev is not NEED_DATA:
            events.append(ev)
            ev = conn.next_event()
    conn.receive_data(b"")
    events += drain(conn)
    assert events == [*expected, ConnectionClosed()]


@settings(max_examples=200, deadline=None)
@given(st.lists(file_infos(), max_size=5), st.data())
def test_any_valid_index_round_trips_split_anywhere(files: list, data: st.DataObject) -> None:
    message = Index(folder="f", files=tuple(files), last_sequence=len(files))
    stream, expected = stream_of([ClusterConfig(), message])
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=4))
    conn, _ = receiver_for([])
    events: list[object] = []
    for part in chunks(stream, cuts):
        conn.receive_data(part)
        events += drain(conn)
    assert events == expected


@settings(max_examples=100, deadline=None)
@given(vectors.filter(bool), st.lists(st.integers(0, 65535), max_size=20))
def test_download_progress_round_trips(version: tuple, indexes: list[int]) -> None:
    message = DownloadProgress(
        "f",
        [FileDownloadProgressUpdate(UpdateType.APPEND, "a/b", version, indexes, MIN_BLOCK_SIZE)],
    )
    decoded, _ = codec.parse_frame(codec.encode_message(message))
    assert decoded == message


def test_sequences_given_as_lists_compare_equal_to_decoded_tuples() -> None:
    message = Index("f", files=[], last_sequence=0)
    assert message.files == ()
    decoded, _ = codec.parse_frame(codec.encode_message(message))
    assert decoded == message


def test_full_size_response_fits_in_a_frame() -> None:
    pair = Pair().handshake()
    pair.transfer(pair.b, Request(1, "f", "big", 0, 16 * 1024 * 1024, b"h" * 32))
    data = bytes(range(256)) * (16 * 1024 * 4)
    assert pair.transfer(pair.a, Response(1, data)) == [Response(1, data)]
