"""A sans-IO p2psync connection, in the manner of h11: bytes in, events out; messages in,
bytes out. It owns no socket and no clock; the adapter in ``net/`` moves the bytes.

    conn = Connection(our_hello)
    transport.send(conn.start())                 # our Hello
    conn.receive_data(chunk)                     # b"" = EOF
    event = conn.next_event()                    # Hello | Message | ConnectionClosed | NEED_DATA
    transport.send(conn.send(ClusterConfig(...)))

Each direction follows ``state.TRANSITIONS``. Request ids are tracked per direction: a
Response must answer an outstanding Request. Any error makes the connection unusable;
the one thing still allowed after the *peer* broke the protocol is sending a Close, so
we can tell it why.
"""

from __future__ import annotations

import enum
from typing import Literal

from ..errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from . import codec
from . import limits as L
from .messages import Close, ConnectionClosed, Hello, Message, Request, Response
from .receive_buffer import ReceiveBuffer
from .state import EVENT_OF_TYPE, Event, State, next_state
from .wire import MSGPACK, WireCodec


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA = _Sentinel.NEED_DATA
"""Returned by next_event when a whole event is not buffered yet: feed more bytes."""

ReceivedEvent = Hello | Message | ConnectionClosed | Literal[_Sentinel.NEED_DATA]

_ORDER = (State.AWAIT_HELLO, State.AWAIT_CLUSTER_CONFIG, State.STEADY)


class Connection:
    def __init__(
        self,
        our_hello: Hello,
        *,
        max_frame_size: int = L.MAX_FRAME_SIZE,
        wire: WireCodec = MSGPACK,
    ) -> None:
        self.our_hello = our_hello
        self.wire = wire  # p2psync/1 or BEP, chosen from the negotiated ALPN
        self._hello_bytes = wire.encode_hello(our_hello)  # fail early on a bad Hello
        self.their_hello: Hello | None = None
        self.their_cluster_config_seen = False  # the peer accepted us (BEP: after its checks)
        self.our_state = State.AWAIT_HELLO
        self.their_state = State.AWAIT_HELLO
        self._max_frame_size = max_frame_size
        self._buf = ReceiveBuffer()  # received chunks, not copied together (see there)
        self._eof = False
        # What went wrong, as text only: a stored exception would keep its traceback's
        # frames (and a rejected payload in them) alive, in a cycle through ``self``.
        self._our_error: str | None = None
        self._their_error: str | None = None
        self._our_requests: set[int] = set()  # sent by us, not answered yet
        self._their_requests: set[int] = set()  # sent by the peer, we owe a Response

    # -- introspection ----------------------------------------------------------------

    @property
    def state(self) -> State:
        """ERROR if either side failed, CLOSED if either side closed, else the lesser state."""
        states = (self.our_state, self.their_state)
        if State.ERROR in states:
            return State.ERROR
        if State.CLOSED in states:
            return State.CLOSED
        return min(states, key=_ORDER.index)

    @property
    def outstanding_requests(self) -> frozenset[int]:
        """Ids of Requests we sent that have no Response yet."""
        return frozenset(self._our_requests)

    @property
    def owed_responses(self) -> frozenset[int]:
        """Ids of the peer's Requests we have not answered yet."""
        return frozenset(self._their_requests)

    # -- sending ------------------------------------------------------------------------

    def start(self) -> bytes:
        """Our Hello, the first bytes we send. Call exactly once."""
        self._check_can_send(None)
        if self.our_state != State.AWAIT_HELLO:
            raise LocalProtocolError("start() was already called")
        self._advance_ours(Event.HELLO)
        return self._hello_bytes

    def send(self, message: Message) -> bytes:
        """The bytes of ``message``; raises LocalProtocolError if it may not be sent now."""
        buffers = self.send_buffers(message)
        return buffers[0] if len(buffers) == 1 else b"".join(buffers)

    def send_buffers(self, message: Message) -> tuple[bytes, ...]:
        """``send`` as buffers to write in order: a block's data is one of them, not
        copied into the frame (``codec.encode_message_buffers``)."""
        self._check_can_send(message)
        try:
            if isinstance(message, Hello):
                raise LocalProtocolError("our Hello is sent by start(), not send()")
            mtype = codec.message_type(message)
            event = EVENT_OF_TYPE[mtype]
            if next_state(self.our_state, event) is None:
                raise LocalProtocolError(_not_allowed("send", event, self.our_state))
            if isinstance(message, Request):
                _check_new_request(message.id, self._our_requests, LocalProtocolError, "we")
            elif isinstance(message, Response) and message.id not in self._their_requests:
                raise LocalProtocolError(f"Response {message.id} answers no Request of the peer")
            data = self.wire.encode_message_buffers(message)
        except LocalProtocolError as exc:
            self._our_error = str(exc)
            self.our_state = State.ERROR
            raise
        self._advance_ours(event)
        if isinstance(message, Request):
            self._our_requests.add(message.id)
        elif isinstance(message, Response):
            self._their_requests.discard(message.id)
        return data

    def _check_can_send(self, message: Message | None) -> None:
        if self._our_error is not None:
            raise LocalProtocolError(f"connection unusable after our error: {self._our_error}")
        if self._their_error is not None and not isinstance(message, Close):
            raise LocalProtocolError(
                f"connection failed ({self._their_error}); only a Close may still be sent"
            )

    def _advance_ours(self, event: Event) -> None:
        new = next_state(self.our_state, event)
        if new is None:
            self._our_error = _not_allowed("send", event, self.our_state)
            self.our_state = State.ERROR
            raise LocalProtocolError(self._our_error)
        self.our_state = new

    # -- receiving ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side (EOF)."""
        if self._eof:
            if data:
                raise LocalProtocolError("received data after EOF")
            return
        if data:
            self._buf.append(data)
        else:
            self._eof = True

    def next_event(self) -> ReceivedEvent:
        """The next complete event from the peer, NEED_DATA, or ConnectionClosed (repeatable)."""
        if self._their_error is not None:
            raise RemoteProtocolError(
                f"connection unusable after the peer's error: {self._their_error}"
            )
        if self._our_error is not None:
            raise LocalProtocolError(f"connection unusable after our error: {self._our_error}")
        try:
            return self._next_event()
        except ProtocolError as exc:
            if not isinstance(exc, RemoteProtocolError):
                raise
            self._their_error = str(exc)
            self.their_state = State.ERROR
            raise

    def _next_event(self) -> ReceivedEvent:
        state = self.their_state
        if state == State.CLOSED:
            if self._buf:
                raise RemoteProtocolError(f"{len(self._buf)} bytes after the connection closed")
            return ConnectionClosed() if self._eof else NEED_DATA
        if state == State.AWAIT_HELLO:
            parsed_hello = self.wire.parse_hello(self._buf.contiguous())
            if parsed_hello is None:
                return self._incomplete("Hello")
            hello, used = parsed_hello
            self._buf.consume(used)
            self.their_state = State.AWAIT_CLUSTER_CONFIG
            self.their_hello = hello
            return hello
        parsed = self.wire.parse_buffered(self._buf, self._max_frame_size)
        if parsed is None:
            return self._incomplete("frame")
        message, used = parsed
        event = EVENT_OF_TYPE[codec.message_type(message)]
        new = next_state(state, event)
        if new is None:
            raise RemoteProtocolError(_not_allowed("receive", event, state))
        if isinstance(message, Request):
            _check_new_request(message.id, self._their_requests, RemoteProtocolError, "the peer")
            self._their_requests.add(message.id)
        elif isinstance(message, Response):
            if message.id not in self._our_requests:
                raise RemoteProtocolError(f"Response {message.id} answers no Request of ours")
            self._our_requests.discard(message.id)
        self._buf.consume(used)
        self.their_state = new
        if event is Event.CLUSTER_CONFIG:
            self.their_cluster_config_seen = True
        return message

    def _incomplete(self, what: str) -> ReceivedEvent:
        if not self._eof:
            return NEED_DATA
        if self._buf:
            raise RemoteProtocolError(f"connection closed in the middle of a {what}")
        new = next_state(self.their_state, Event.EOF)
        assert new is not None  # every live state accepts EOF
        self.their_state = new
        return ConnectionClosed()


def _check_new_request(
    request_id: int, outstanding: set[int], error: type[ProtocolError], who: str
) -> None:
    if request_id in outstanding:
        raise error(f"{who} reused Request id {request_id} while it is outstanding")
    if len(outstanding) >= L.MAX_OUTSTANDING_REQUESTS:
        raise error(f"{who} exceeded {L.MAX_OUTSTANDING_REQUESTS} outstanding Requests")


def _not_allowed(verb: str, event: Event, state: State) -> str:
    side = "send" if verb == "send" else "receive"
    if state == State.AWAIT_HELLO:
        return f"cannot {side} {event.value} before the Hello"
    if state == State.AWAIT_CLUSTER_CONFIG:
        return f"cannot {side} {event.value} before ClusterConfig"
    if state == State.CLOSED:
        return f"cannot {side} {event.value} after Close"
    return f"cannot {side} {event.value} in state {state.value}"
