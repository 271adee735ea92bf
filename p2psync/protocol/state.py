"""The connection state machine: one table, applied to each direction on its own.

Each side of a connection (what we send, what we receive) walks the same states:

    AWAIT_HELLO --Hello--> AWAIT_CLUSTER_CONFIG --ClusterConfig--> STEADY --Close--> CLOSED

``TRANSITIONS[state][event]`` is the next state; a missing entry means the event is not
allowed in that state (LocalProtocolError when we send it, RemoteProtocolError when we
receive it). EOF is only ever received. docs/protocol.md draws this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .messages import MessageType


class State(enum.Enum):
    AWAIT_HELLO = "await-hello"
    AWAIT_CLUSTER_CONFIG = "await-cluster-config"
    STEADY = "steady"
    CLOSED = "closed"
    ERROR = "error"  # the side violated the protocol; nothing more is processed


class Event(enum.Enum):
    HELLO = "Hello"
    CLUSTER_CONFIG = "ClusterConfig"
    INDEX = "Index"
    INDEX_UPDATE = "IndexUpdate"
    REQUEST = "Request"
    RESPONSE = "Response"
    DOWNLOAD_PROGRESS = "DownloadProgress"
    PING = "Ping"
    CLOSE = "Close"
    EOF = "EOF"


EVENT_OF_TYPE: Mapping[MessageType, Event] = {
    MessageType.CLUSTER_CONFIG: Event.CLUSTER_CONFIG,
    MessageType.INDEX: Event.INDEX,
    MessageType.INDEX_UPDATE: Event.INDEX_UPDATE,
    MessageType.REQUEST: Event.REQUEST,
    MessageType.RESPONSE: Event.RESPONSE,
    MessageType.DOWNLOAD_PROGRESS: Event.DOWNLOAD_PROGRESS,
    MessageType.PING: Event.PING,
    MessageType.CLOSE: Event.CLOSE,
}

_S = State
_E = Event

TRANSITIONS: Mapping[State, Mapping[Event, State]] = {
    _S.AWAIT_HELLO: {
        _E.HELLO: _S.AWAIT_CLUSTER_CONFIG,
        _E.EOF: _S.CLOSED,  # e.g. a peer that does not want to talk to us
    },
    _S.AWAIT_CLUSTER_CONFIG: {
        _E.CLUSTER_CONFIG: _S.STEADY,
        _E.CLOSE: _S.CLOSED,  # e.g. "unknown device" after the Hellos
        _E.EOF: _S.CLOSED,
    },
    _S.STEADY: {
        _E.CLUSTER_CONFIG: _S.STEADY,  # a later ClusterConfig updates the first
        _E.INDEX: _S.STEADY,
        _E.INDEX_UPDATE: _S.STEADY,
        _E.REQUEST: _S.STEADY,
        _E.RESPONSE: _S.STEADY,
        _E.DOWNLOAD_PROGRESS: _S.STEADY,
        _E.PING: _S.STEADY,
        _E.CLOSE: _S.CLOSED,
        _E.EOF: _S.CLOSED,
    },
    _S.CLOSED: {
        _E.EOF: _S.CLOSED,  # EOF after Close is the normal ending
    },
    _S.ERROR: {},
}


def next_state(state: State, event: Event) -> State | None:
    """The state after ``event``, or None if ``event`` is not allowed in ``state``."""
    return TRANSITIONS[state].get(event)
