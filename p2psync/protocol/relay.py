"""Syncthing's relay protocol v1, sans I/O: messages to bytes and bytes to messages.

Every message is a 12-byte header (magic 0x9E79BC40, int32 type, int32 body length, all
big-endian) and an XDR body: 4-byte big-endian integers, and opaque/string fields as a
uint32 length, the bytes and zero padding to a multiple of 4. A uint16 and a bool each
take a full 4 bytes. Bodies are at most 1024 bytes (the relay's own limit).

The same framing serves both connection modes: *protocol mode* (inside TLS, ALPN
``bep-relay``: join, ping, connect requests, invitations) and *session mode* (plain TCP:
one JoinSessionRequest and its Response, after which the stream is the peer's).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from ..errors import ConfigError, DeviceIDError, RemoteProtocolError
from ..identity import DeviceID

MAGIC = 0x9E79BC40
ALPN = b"bep-relay"
HEADER_SIZE = 12
MAX_BODY = 1024
KEY_SIZE = 32
DEVICE_ID_SIZE = 32

# Response codes (Response.code).
SUCCESS = 0
NOT_FOUND = 1
ALREADY_CONNECTED = 2
WRONG_TOKEN = 3
INTERNAL_ERROR = 99
UNEXPECTED_MESSAGE = 100

_HEADER = struct.Struct(">Iii")


class RelayProtocolError(RemoteProtocolError):
    """The relay sent something that is not a valid relay protocol message."""


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE = 0


@dataclass(frozen=True, slots=True)
class Pong:
    TYPE = 1


@dataclass(frozen=True, slots=True)
class JoinRelayRequest:
    """Join as a permanent (listening) client. ``token`` exists since Syncthing 1.22; an
    empty token is sent as an empty body, which every relay version accepts."""

    token: str = ""
    TYPE = 2


@dataclass(frozen=True, slots=True)
class JoinSessionRequest:
    key: bytes
    TYPE = 3


@dataclass(frozen=True, slots=True)
class Response:
    code: int
    message: str
    TYPE = 4

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Ask the relay to invite ``device_id`` (32 raw bytes) to a session with us."""

    device_id: bytes
    TYPE = 5


@dataclass(frozen=True, slots=True)
class SessionInvitation:
    """Join session ``key`` at ``address``:``port`` (an empty or unspecified address
    means the relay's own). ``server_socket`` says which TLS role this side plays."""

    from_device: bytes
    key: bytes
    address: bytes
    port: int
    server_socket: bool
    TYPE = 6

    def host(self, relay_host: str) -> str:
        """Where to open the session connection: the invitation's address, or the
        relay's host when the invitation leaves it open."""
        if len(self.address) not in (4, 16):
            return relay_host
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return relay_host if ip.is_unspecified else str(ip)


@dataclass(frozen=True, slots=True)
class RelayFull:
    TYPE = 7


RelayMessage = (
    Ping
    | Pong
    | JoinRelayRequest
    | JoinSessionRequest
    | Response
    | ConnectRequest
    | SessionInvitation
    | RelayFull
)


# ---- encoding --------------------------------------------------------------------------


def _opaque(data: bytes) -> bytes:
    pad = (-len(data)) % 4
    return struct.pack(">I", len(data)) + data + b"\0" * pad


def _body(msg: RelayMessage) -> bytes:
    if isinstance(msg, Ping | Pong | RelayFull):
        return b""
    if isinstance(msg, JoinRelayRequest):
        return _opaque(msg.token.encode()) if msg.token else b""
    if isinstance(msg, JoinSessionRequest):
        return _opaque(msg.key)
    if isinstance(msg, Response):
        return struct.pack(">i", msg.code) + _opaque(msg.message.encode())
    if isinstance(msg, ConnectRequest):
        return _opaque(msg.device_id)
    return (
        _opaque(msg.from_device)
        + _opaque(msg.key)
        + _opaque(msg.address)
        + struct.pack(">II", msg.port, 1 if msg.server_socket else 0)
    )


def encode(msg: RelayMessage) -> bytes:
    """The header and body of ``msg``."""
    body = _body(msg)
    if len(body) > MAX_BODY:
        raise ValueError(f"relay message body of {len(body)} bytes exceeds {MAX_BODY}")
    return _HEADER.pack(MAGIC, msg.TYPE, len(body)) + body


# ---- decoding --------------------------------------------------------------------------


class _XDRReader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise RelayProtocolError(f"relay {self.what} message is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def opaque(self, limit: int) -> bytes:
        n = self.uint32()
        if n > limit:
            raise RelayProtocolError(f"relay {self.what} field of {n} bytes exceeds {limit}")
        data = self._take(n)
        self._take((-n) % 4)
        return data

    def string(self, limit: int) -> str:
        return self.opaque(limit).decode("utf-8", "replace")


def decode_body(msg_type: int, body: bytes) -> RelayMessage:
    """One message from its type and body. Trailing bytes are ignored (as Go's XDR does)."""
    if msg_type == Ping.TYPE:
        return Ping()
    if msg_type == Pong.TYPE:
        return Pong()
    if msg_type == RelayFull.TYPE:
        return RelayFull()
    if msg_type == JoinRelayRequest.TYPE:
        if not body:
            return JoinRelayRequest()
        return JoinRelayRequest(_XDRReader(body, "join").string(MAX_BODY))
    if msg_type == JoinSessionRequest.TYPE:
        return JoinSessionRequest(_XDRReader(body, "join session").opaque(KEY_SIZE))
    if msg_type == Response.TYPE:
        r = _XDRReader(body, "response")
        return Response(r.int32(), r.string(MAX_BODY))
    if msg_type == ConnectRequest.TYPE:
        return ConnectRequest(_XDRReader(body, "connect").opaque(DEVICE_ID_SIZE))
    if msg_type == SessionInvitation.TYPE:
        r = _XDRReader(body, "invitation")
        from_device = r.opaque(DEVICE_ID_SIZE)
        key = r.opaque(KEY_SIZE)
        address = r.opaque(32)
        port = r.uint32()
        server_socket = r.uint32()
        if port > 0xFFFF or server_socket > 1:
            raise RelayProtocolError("relay invitation has an invalid port or flag")
        return SessionInvitation(from_device, key, address, port, bool(server_socket))
    raise RelayProtocolError(f"unknown relay message type {msg_type}")


class RelayDecoder:
    """Incremental decoder: feed received bytes, take whole messages out.

    After a session join succeeds, :meth:`take_remaining` hands the bytes that followed
    the Response to the relayed stream they belong to.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> RelayMessage | None:
        """The next complete message, or None until more bytes arrive."""
        if len(self._buffer) < HEADER_SIZE:
            return None
        magic, msg_type, length = _HEADER.unpack_from(self._buffer)
        if magic != MAGIC:
            raise RelayProtocolError(f"bad relay magic {magic:#010x}")
        if not 0 <= length <= MAX_BODY:
            raise RelayProtocolError(f"bad relay message length {length}")
        if len(self._buffer) < HEADER_SIZE + length:
            return None
        body = bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + length])
        del self._buffer[: HEADER_SIZE + length]
        return decode_body(msg_type, body)

    def take_remaining(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


# ---- relay addresses -------------------------------------------------------------------

DEFAULT_RELAY_PORT = 22067
MAX_TOKEN = 256


@dataclass(frozen=True, slots=True)
class RelayURL:
    """A parsed ``relay://host:port/?id=<relay device ID>[&token=...]``.

    ``device_id`` pins the relay's certificate; the other query parameters a relay
    publishes (pingInterval, networkTimeout, ...) only describe it and are dropped.
    """

    host: str
    port: int
    device_id: DeviceID
    token: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = f"&token={quote(self.token, safe='')}" if self.token else ""
        return f"relay://{host}:{self.port}/?id={self.device_id}{tail}"


def is_relay_url(text: str) -> bool:
    return text.strip().lower().startswith("relay://")


def parse_relay_url(text: str) -> RelayURL:
    """Parse a relay address; ConfigError says what is wrong with it."""
    raw = text.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"relay address {text!r} is malformed: {exc}") from exc
    if parts.scheme.lower() != "relay" or not parts.hostname:
        raise ConfigError(f"{text!r} is not a relay address like relay://HOST:PORT/?id=DEVICE-ID")
    if parts.path not in ("", "/") or parts.fragment or parts.username:
        raise ConfigError(f"relay address {text!r} has parts a relay address cannot have")
    query = parse_qs(parts.query)
    ids = query.get("id", [])
    if len(ids) != 1:
        raise ConfigError(f"relay address {text!r} needs exactly one id=RELAY-DEVICE-ID")
    try:
        device_id = DeviceID.parse(ids[0])
    except DeviceIDError as exc:
        raise ConfigError(f"relay address {text!r}: id is not a device ID ({exc})") from exc
    token = query.get("token", [""])[0]
    if len(token.encode()) > MAX_TOKEN:
        raise ConfigError(f"relay address {text!r}: the token is longer than {MAX_TOKEN} bytes")
    return RelayURL(parts.hostname, DEFAULT_RELAY_PORT if port is None else port, device_id, token)
