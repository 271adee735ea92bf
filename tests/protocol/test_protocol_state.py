"""The connection state machine: what may be sent and received when, and what an error does."""

from __future__ import annotations

from pathlib import Path

import pytest
from protocol_support import Pair, drain, hello, sample_messages, sha, steady_receiver

from p2psync.errors import LocalProtocolError, RemoteProtocolError
from p2psync.protocol import codec
from p2psync.protocol import limits as L
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import (
    Close,
    ClusterConfig,
    ConnectionClosed,
    Index,
    Ping,
    Request,
    Response,
)
from p2psync.protocol.state import TRANSITIONS, Event, State

NOT_CLUSTER_CONFIG = [m for m in sample_messages() if not isinstance(m, ClusterConfig | Close)]


def after_hellos() -> Pair:
    pair = Pair()
    pair.b.receive_data(pair.a.start())
    pair.a.receive_data(pair.b.start())
    drain(pair.a)
    drain(pair.b)
    return pair


# -- receiving ---------------------------------------------------------------------------


@pytest.mark.parametrize("message", NOT_CLUSTER_CONFIG, ids=lambda m: type(m).__name__)
def test_receiving_anything_but_cluster_config_first_is_a_remote_error(message: object) -> None:
    pair = after_hellos()
    pair.a.receive_data(codec.encode_message(message))  # a peer that ignores the rules
    with pytest.raises(RemoteProtocolError, match="before ClusterConfig"):
        pair.a.next_event()
    assert pair.a.their_state is State.ERROR
    assert pair.a.state is State.ERROR


def test_a_frame_instead_of_a_hello_is_rejected_by_its_magic() -> None:
    conn = Connection(hello())
    conn.receive_data(codec.encode_message(ClusterConfig()))
    with pytest.raises(RemoteProtocolError, match="not a p2psync peer"):
        conn.next_event()


def test_a_syncthing_peer_is_recognised() -> None:
    conn = Connection(hello())
    conn.receive_data(bytes.fromhex("2EA7D90B0010"))
    with pytest.raises(RemoteProtocolError, match="Syncthing"):
        conn.next_event()


def test_a_second_hello_is_rejected() -> None:
    pair = after_hellos()
    pair.a.receive_data(Connection(hello("again")).start())
    with pytest.raises(RemoteProtocolError):
        pair.a.next_event()


def test_messages_after_close_are_rejected() -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(codec.encode_message(Close("bye")) + codec.encode_message(Ping()))
    assert receiver.next_event() == Close("bye")
    with pytest.raises(RemoteProtocolError, match="after the connection closed"):
        receiver.next_event()


def test_close_is_allowed_before_cluster_config() -> None:
    pair = after_hellos()
    assert pair.transfer(pair.a, Close("unknown device")) == [Close("unknown device")]
    assert pair.b.their_state is State.CLOSED


def test_a_later_cluster_config_is_accepted() -> None:
    pair = Pair().handshake()
    cc = sample_messages()[0]
    assert pair.transfer(pair.a, cc) == [cc]
    assert pair.b.their_state is State.STEADY


def test_response_must_answer_an_outstanding_request() -> None:
    receiver, sender = steady_receiver()  # receiver has Request 7 outstanding
    assert receiver.outstanding_requests == {7}
    assert sender.owed_responses == {7}
    receiver.receive_data(sender.send(Response(7, b"x")))
    assert receiver.next_event() == Response(7, b"x")
    assert receiver.outstanding_requests == frozenset()
    receiver.receive_data(codec.encode_message(Response(7, b"x")))  # answered twice
    with pytest.raises(RemoteProtocolError, match="answers no Request"):
        receiver.next_event()


def test_a_request_id_may_not_be_reused_while_outstanding() -> None:
    receiver, sender = steady_receiver()
    request = Request(3, "f", "a", 0, 1, sha(b"a"))
    frame = codec.encode_message(request)
    receiver.receive_data(frame + frame)
    assert receiver.next_event() == request
    with pytest.raises(RemoteProtocolError, match="reused Request id 3"):
        receiver.next_event()


def test_a_request_id_may_be_reused_once_answered() -> None:
    pair = Pair().handshake()
    request = Request(3, "f", "a", 0, 1, sha(b"a"))
    for _ in range(3):
        assert pair.transfer(pair.a, request) == [request]
        assert pair.transfer(pair.b, Response(3, b"a")) == [Response(3, b"a")]


def test_too_many_outstanding_requests_from_the_peer() -> None:
    receiver, _ = steady_receiver()
    frames = b"".join(
        codec.encode_message(Request(i, "f", "a", 0, 1, sha(b"a")))
        for i in range(L.MAX_OUTSTANDING_REQUESTS + 1)
    )
    receiver.receive_data(frames)
    with pytest.raises(RemoteProtocolError, match="outstanding Requests"):
        drain(receiver)
    assert len(receiver.owed_responses) == L.MAX_OUTSTANDING_REQUESTS


# -- EOF ------------------------------------------------------------------------------------


def test_eof_at_a_frame_boundary_closes_quietly() -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(b"")
    assert receiver.next_event() == ConnectionClosed()
    assert receiver.next_event() == ConnectionClosed()
    assert receiver.their_state is State.CLOSED


def test_eof_before_any_hello_closes_quietly() -> None:
    conn = Connection(hello())
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()


@pytest.mark.parametrize("cut", [1, 4, 5])
def test_eof_inside_a_frame_is_a_remote_error(cut: int) -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(codec.encode_message(Ping())[:cut])
    assert receiver.next_event() is NEED_DATA
    receiver.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a frame"):
        receiver.next_event()


def test_eof_inside_the_hello_is_a_remote_error() -> None:
    conn = Connection(hello())
    conn.receive_data(Connection(hello("x")).start()[:-1])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a Hello"):
        conn.next_event()


def test_data_after_eof_is_a_local_error() -> None:
    conn = Connection(hello())
    conn.receive_data(b"")
    conn.receive_data(b"")  # repeating EOF is harmless
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"x")


# -- sending -------------------------------------------------------------------------------


def test_sending_before_start_is_a_local_error() -> None:
    conn = Connection(hello())
    with pytest.raises(LocalProtocolError, match="before the Hello"):
        conn.send(ClusterConfig())
    assert conn.our_state is State.ERROR


def test_start_twice_is_a_local_error() -> None:
    conn = Connection(hello())
    conn.start()
    with pytest.raises(LocalProtocolError, match="already"):
        conn.start()


def test_hello_goes_through_start_not_send() -> None:
    conn = Connection(hello())
    conn.start()
    with pytest.raises(LocalProtocolError, match="start"):
        conn.send(hello())  # type: ignore[arg-type]


@pytest.mark.parametrize("message", NOT_CLUSTER_CONFIG, ids=lambda m: type(m).__name__)
def test_sending_anything_but_cluster_config_first_is_a_local_error(message: object) -> None:
    conn = Connection(hello())
    conn.start()
    with pytest.raises(LocalProtocolError, match="before ClusterConfig"):
        conn.send(message)  # type: ignore[arg-type]


def test_sending_after_close_is_a_local_error() -> None:
    pair = Pair().handshake()
    pair.a.send(Close("bye"))
    with pytest.raises(LocalProtocolError, match="after Close"):
        pair.a.send(Ping())


def test_a_response_must_answer_a_request_of_the_peer() -> None:
    pair = Pair().handshake()
    with pytest.raises(LocalProtocolError, match="answers no Request"):
        pair.a.send(Response(99, b""))


def test_our_request_ids_must_be_unique_while_outstanding() -> None:
    pair = Pair().handshake()
    pair.a.send(Request(1, "f", "a", 0, 1, sha(b"a")))
    with pytest.raises(LocalProtocolError, match="reused Request id 1"):
        pair.a.send(Request(1, "f", "b", 0, 1, sha(b"b")))


def test_a_bad_hello_fails_at_construction() -> None:
    with pytest.raises(LocalProtocolError, match="timestamp"):
        Connection(hello().__class__("a", "b", "c", -1))


# -- after an error ------------------------------------------------------------------------


def test_after_a_remote_error_only_a_close_may_be_sent() -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError, match="empty frame"):
        receiver.next_event()
    with pytest.raises(RemoteProtocolError, match="unusable"):
        receiver.next_event()
    with pytest.raises(LocalProtocolError, match="only a Close"):
        receiver.send(Ping())
    data = receiver.send(Close("protocol error: empty frame"))
    assert codec.parse_frame(data) == (Close("protocol error: empty frame"), len(data))


def test_after_a_local_error_nothing_works() -> None:
    pair = Pair().handshake()
    with pytest.raises(LocalProtocolError):
        pair.a.send(Index("f", files=(), last_sequence=-1))
    assert pair.a.our_state is State.ERROR
    for action in (lambda: pair.a.send(Ping()), pair.a.next_event, lambda: pair.a.send(Close())):
        with pytest.raises(LocalProtocolError, match="unusable"):
            action()


# -- the table itself ----------------------------------------------------------------------


def render_table() -> str:
    """TRANSITIONS as the markdown table docs/protocol.md shows."""
    events = list(Event)
    lines = [
        "| state | " + " | ".join(e.value for e in events) + " |",
        "|---|" + "---|" * len(events),
    ]
    for state, row in TRANSITIONS.items():
        cells = [row[e].name if e in row else "-" for e in events]
        lines.append(f"| {state.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_docs_show_exactly_this_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
    assert render_table() in doc.read_text(encoding="utf-8"), render_table()


def test_every_live_state_accepts_eof_and_error_accepts_nothing() -> None:
    for state, row in TRANSITIONS.items():
        if state is State.ERROR:
            assert row == {}
        else:
            assert row[Event.EOF] is State.CLOSED
    assert set(TRANSITIONS) == set(State)
