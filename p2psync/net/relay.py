"""Reaching peers through Syncthing relays (relay protocol v1) with trio.

A :class:`RelayMember` keeps one permanent protocol-mode connection joined to a relay
(TLS with ALPN ``bep-relay``, our device certificate, the relay's certificate pinned by
the ``id=`` of its URL), answers its pings, pings it in turn, reconnects with backoff,
and turns every SessionInvitation into a session-mode stream handed to ``on_session``.
:func:`dial_through_relay` is the other end: a temporary protocol-mode connection asks
the relay to invite a device, then joins the session. Either way the caller runs the
normal BEP TLS handshake inside the returned stream, so the relay sees only ciphertext.
The wire format lives in :mod:`p2psync.protocol.relay`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from OpenSSL import SSL

from ..errors import P2PSyncError, TrustError
from ..identity import DeviceID, Identity
from ..protocol.relay import (
    ALPN,
    ConnectRequest,
    JoinRelayRequest,
    JoinSessionRequest,
    Ping,
    Pong,
    RelayDecoder,
    RelayFull,
    RelayMessage,
    RelayProtocolError,
    RelayURL,
    Response,
    SessionInvitation,
    encode,
)
from .tls import make_tls_context, tls_connect

log = logging.getLogger("p2psync.net.relay")

CONNECT_TIMEOUT = 10.0
MESSAGE_TIMEOUT = 20.0
PING_INTERVAL = 45.0  # strelaysrv pings every 60 s and drops a client silent for 120 s
PONG_TIMEOUT = 30.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 60.0
STABLE_AFTER = 10.0
MAX_JOINING = 16  # invitations being joined at once, per relay; more are dropped
# strelaysrv hands a session join to the session only while the session's goroutine waits
# for one (an unbuffered channel); a join that lands while it is busy with the other
# side's join is refused ("already connected") and its key is gone. The dialler joins at
# once; the invited side waits this long, so the two joins do not land together.
INVITED_JOIN_DELAY = 0.05
JOIN_ATTEMPTS = 3  # a dialler whose own join is refused asks for a new session

_NETWORK_ERRORS = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    P2PSyncError,
)


class RelayError(P2PSyncError):
    """A relay refused or failed a request (not found, full, wrong token, ...)."""


def make_relay_context(identity: Identity) -> SSL.Context:
    """Our device certificate, ALPN ``bep-relay`` (TLS 1.3, as for peers)."""
    return make_tls_context(identity, [ALPN])


class _Channel:
    """Relay messages over a stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.decoder = RelayDecoder()

    async def send(self, msg: RelayMessage) -> None:
        await self.stream.send_all(encode(msg))

    async def receive(self) -> RelayMessage:
        while True:
            msg = self.decoder.next_message()
            if msg is not None:
                return msg
            data = await self.stream.receive_some(4096)
            if not data:
                raise trio.BrokenResourceError("the relay closed the connection")
            self.decoder.feed(bytes(data))


class _PrefixedStream(trio.abc.Stream):
    """A stream that first yields bytes already read from it (after the session join)."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            await trio.lowlevel.checkpoint()
            return data
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _open_protocol_mode(
    relay: RelayURL, context: SSL.Context, patience: float = CONNECT_TIMEOUT
) -> trio.abc.Stream:
    """A TLS connection to the relay whose certificate matches the URL's ``id=``."""
    with trio.fail_after(patience):
        tcp = await trio.open_tcp_stream(relay.host, relay.port)
    tls = await tls_connect(tcp, context, handshake_timeout=patience)
    try:
        got = DeviceID.from_cert_der(tls.peer_certificate_der())
    except P2PSyncError:
        await trio.aclose_forcefully(tls)
        raise
    if got != relay.device_id:
        await trio.aclose_forcefully(tls)
        raise TrustError(f"relay {relay.host}:{relay.port} is device {got}, not {relay.device_id}")
    return tls


async def join_session(invitation: SessionInvitation, relay: RelayURL) -> trio.abc.Stream:
    """Session mode: plain TCP to the invitation's address, JoinSessionRequest, Response.
    Returns the relayed byte stream to the peer."""
    host = invitation.host(relay.host)
    with trio.fail_after(CONNECT_TIMEOUT):
        tcp = await trio.open_tcp_stream(host, invitation.port)
    try:
        channel = _Channel(tcp)
        with trio.fail_after(MESSAGE_TIMEOUT):
            await channel.send(JoinSessionRequest(invitation.key))
            reply = await channel.receive()
        if not isinstance(reply, Response) or not reply.ok:
            raise RelayError(f"relay {host}:{invitation.port} refused the session: {reply}")
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return _PrefixedStream(tcp, channel.decoder.take_remaining())


async def dial_through_relay(
    relay: RelayURL, target: DeviceID, context: SSL.Context
) -> tuple[trio.abc.Stream, SessionInvitation]:
    """Ask ``relay`` to invite ``target``, then join the session. RelayError if the target
    is not joined there or the relay is full. A refused session join (the relay's race
    between the two joins) costs only that session: a new one is asked for."""
    for _ in range(JOIN_ATTEMPTS - 1):
        invitation = await _invite(relay, target, context)
        try:
            return await join_session(invitation, relay), invitation
        except RelayError as exc:
            log.info("relay %s:%d: %s; asking for a new session", relay.host, relay.port, exc)
    invitation = await _invite(relay, target, context)
    return await join_session(invitation, relay), invitation


async def _invite(relay: RelayURL, target: DeviceID, context: SSL.Context) -> SessionInvitation:
    """A ConnectRequest for ``target`` on a temporary protocol-mode connection."""
    tls = await _open_protocol_mode(relay, context)
    try:
        channel = _Channel(tls)
        with trio.fail_after(MESSAGE_TIMEOUT):
            await channel.send(ConnectRequest(target.raw))
            while True:
                reply = await channel.receive()
                if not isinstance(reply, Ping | Pong):
                    break
    finally:
        await trio.aclose_forcefully(tls)
    if isinstance(reply, RelayFull):
        raise RelayError(f"relay {relay.host}:{relay.port} is full")
    if isinstance(reply, Response):
        raise RelayError(f"relay {relay.host}:{relay.port}: {reply.message} (code {reply.code})")
    if not isinstance(reply, SessionInvitation):
        raise RelayProtocolError(f"relay answered a connect request with {reply}")
    if reply.from_device != target.raw:
        raise RelayProtocolError("relay invited us to a session with another device")
    return reply


@dataclass
class RelayStatus:
    """What a member knows about its relay (for status and discovery)."""

    url: RelayURL
    joined: bool = False
    failures: int = 0
    last_error: str = ""


class RelayMember:
    """Keeps this device joined to one relay and accepts its session invitations.

    Each invitation is served in ``sessions`` (a nursery that outlives this relay
    connection, so a rejoin does not cut relayed sessions): once the session join
    succeeded, ``on_session(stream, invitation)`` owns (and must close) the stream.
    """

    def __init__(
        self,
        relay: RelayURL,
        context: SSL.Context,
        on_session: Callable[[trio.abc.Stream, SessionInvitation], Awaitable[None]],
        sessions: trio.Nursery,
        *,
        on_change: Callable[[], None] = lambda: None,
        ping_interval: float = PING_INTERVAL,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
    ) -> None:
        self.status = RelayStatus(relay)
        self.context = context
        self.on_session = on_session
        self.sessions = sessions
        self.on_change = on_change
        self.ping_interval = ping_interval
        self.backoff = backoff
        self.connect_timeout = CONNECT_TIMEOUT
        self.joining = 0
        self.dropped_invitations = 0

    @property
    def url(self) -> RelayURL:
        return self.status.url

    async def run(self) -> None:
        """Join, serve, and rejoin after any failure, until cancelled."""
        relay = self.url
        while True:
            started = trio.current_time()
            try:
                await self._serve_once()
            except* _NETWORK_ERRORS as group:
                exc = _first_leaf(group)
                self.status.last_error = str(exc) or type(exc).__name__
            except* Exception as group:  # a bug: keep the daemon up, say so, try again
                exc = _first_leaf(group)
                self.status.last_error = f"unexpected error: {exc!r}"
                log.error("relay %s:%d: unexpected error", relay.host, relay.port, exc_info=exc)
            finally:
                if self.status.joined:
                    self.status.joined = False
                    self.on_change()
            if trio.current_time() - started >= STABLE_AFTER:
                self.status.failures = 0
            self.status.failures += 1
            low, high = self.backoff
            wait = min(high, low * 2 ** min(self.status.failures - 1, 32))
            wait *= random.uniform(0.8, 1.2)
            log.info(
                "relay %s:%d: %s; rejoining in %.1f s",
                relay.host,
                relay.port,
                self.status.last_error,
                wait,
            )
            await trio.sleep(wait)

    async def _serve_once(self) -> None:
        relay = self.url
        tls = await _open_protocol_mode(relay, self.context, self.connect_timeout)
        async with tls:
            channel = _Channel(tls)
            with trio.fail_after(self.connect_timeout):
                await channel.send(JoinRelayRequest(relay.token))
                reply = await channel.receive()
            if isinstance(reply, RelayFull):
                raise RelayError("the relay is full")
            if not isinstance(reply, Response) or not reply.ok:
                raise RelayError(f"the relay refused to let us join: {reply}")
            self.status.joined = True
            self.status.last_error = ""
            log.info("joined relay %s:%d", relay.host, relay.port)
            self.on_change()
            async with trio.open_nursery() as nursery:
                pong = _PongWatch()
                nursery.start_soon(self._ping_loop, channel, pong)
                await self._receive_loop(channel, pong)

    async def _ping_loop(self, channel: _Channel, pong: _PongWatch) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            pong.event = trio.Event()
            await channel.send(Ping())
            with trio.move_on_after(PONG_TIMEOUT) as scope:
                await pong.event.wait()
            if scope.cancelled_caught:
                raise trio.TooSlowError(f"no pong from the relay within {PONG_TIMEOUT:g} s")

    async def _receive_loop(self, channel: _Channel, pong: _PongWatch) -> None:
        while True:
            msg = await channel.receive()
            pong.event.set()  # any traffic shows the relay is alive
            if isinstance(msg, Ping):
                await channel.send(Pong())
            elif isinstance(msg, SessionInvitation):
                if self.joining >= MAX_JOINING:  # a relay flooding us with invitations
                    self.dropped_invitations += 1
                    continue
                self.joining += 1
                self.sessions.start_soon(self._accept_invitation, msg)
            elif isinstance(msg, RelayFull):
                raise RelayError("the relay is full")
            elif not isinstance(msg, Pong):
                raise RelayProtocolError(f"unexpected message from the relay: {msg}")

    async def _accept_invitation(self, invitation: SessionInvitation) -> None:
        try:
            await trio.sleep(INVITED_JOIN_DELAY)
            stream = await join_session(invitation, self.url)
        except _NETWORK_ERRORS as exc:
            log.info("relay session invitation from %s failed: %s", _short(invitation), exc)
            return
        finally:
            self.joining -= 1
        await self.on_session(stream, invitation)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _PongWatch:
    def __init__(self) -> None:
        self.event = trio.Event()


def _short(invitation: SessionInvitation) -> str:
    try:
        return DeviceID(invitation.from_device).short_str()
    except P2PSyncError:
        return "an invalid device"
