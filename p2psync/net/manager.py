"""The connection manager: listens, dials known devices, authenticates, and hands each
trusted connection to the sync model.

Acceptance: TLS 1.3 with both certificates; the peer's certificate hash is its device
ID. Ourselves and "not the device we dialled" are refused at once; after the Hello
exchange an unknown device is recorded as pending (with the name from its Hello) and
closed before any index data. Exactly one connection per device: when both sides dial
at once, the connection started by the device with the greater ID wins on both ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from OpenSSL import SSL

from .. import CLIENT_NAME, __version__
from ..config import Config, DeviceConfig
from ..endpoints import (
    DeviceAddress,
    Endpoint,
    ListenAddress,
    explicit_addresses,
    parse_endpoint,
    uses_discovery,
)
from ..errors import P2PSyncError, ProtocolError, RemoteProtocolError
from ..events import EventLog
from ..identity import DeviceID, Identity
from ..oslimits import open_file_soft_limit
from ..pending import PendingDevice, PendingStore
from ..protocol.bep import ALPN as BEP_ALPN
from ..protocol.connection import NEED_DATA, Connection
from ..protocol.messages import Close, Hello
from ..protocol.relay import RelayURL, SessionInvitation, is_relay_url, parse_relay_url
from ..protocol.wire import WireCodec, codec_for_alpn
from .address_book import AddressBook
from .admission import Admission, AdmissionLimits, Ticket, serve_admitted
from .dialstate import DialBackoff, backoff_base_from_env
from .listeners import ListenerGroup, bound_addresses, open_listeners_announced
from .peer import PeerConnection
from .ratelimit import RateLimitedStream, TokenBucket
from .relay_service import RelayService
from .tls import TLSStream, make_tls_context, tls_accept, tls_connect
from .trust import PeerRejectedError, authenticate_peer

log = logging.getLogger("p2psync.net")

Dialable = DeviceAddress | str
"""An address to dial: a configured one (parsed once, when the config was loaded or
edited) or one discovery found (text, parsed when it is dialled)."""


def _is_relay(address: Dialable) -> bool:
    if isinstance(address, DeviceAddress):
        return address.relay is not None
    return is_relay_url(address)


def _dial_target(address: Dialable) -> Endpoint | RelayURL:
    """Where to dial ``address``; ConfigError for discovered text that is no address."""
    if isinstance(address, DeviceAddress):
        assert address.target is not None  # explicit_addresses() leaves dynamic out
        return address.target
    return parse_relay_url(address) if is_relay_url(address) else parse_endpoint(address)


# Failures an incoming connection is expected to meet (network, TLS, protocol, trust):
# one log line each. Anything else is a bug, logged with a traceback now and then.
_EXPECTED_FAILURES = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    OSError,
    P2PSyncError,
)
_TRACEBACK_INTERVAL = 60.0

HANDSHAKE_TIMEOUT = 10.0
DIAL_TIMEOUT = 10.0


def format_tcp_url(host: str, port: int) -> str:
    return str(Endpoint("tcp", host, port))


@dataclass
class _Active:
    peer: PeerConnection
    initiated_by_us: bool
    relayed: bool = False


class ConnectionManager:
    def __init__(
        self,
        *,
        identity: Identity,
        get_config: Callable[[], Config],
        cache: AddressBook,
        pending: PendingStore,
        events: EventLog,
        serve_peer: Callable[[PeerConnection], Awaitable[None]],
        relays: RelayService,
        on_disconnected: Callable[[DeviceID], None] = lambda _device: None,
    ) -> None:
        self.identity = identity
        self.local = identity.device_id
        self.get_config = get_config
        self.cache = cache
        self.pending = pending
        self.events = events
        self.serve_peer = serve_peer
        self.listen_addresses: list[str] = []
        # The listen addresses as configured (a host name stays a name; port 0 filled in).
        self.announce_addresses: list[str] = []
        self.active: dict[DeviceID, _Active] = {}
        self._dialing: set[DeviceID] = set()
        self.dial_backoff = DialBackoff(backoff_base_from_env())
        self._ctx: SSL.Context | None = None
        self._wake = trio.Event()
        self.send_bucket = TokenBucket.unlimited()
        self.recv_bucket = TokenBucket.unlimited()
        self._device_buckets: dict[DeviceID, tuple[TokenBucket, TokenBucket]] = {}
        # Relayed connections: their own limits, and direct dials while one is up.
        self.relay_send_bucket = TokenBucket.unlimited()
        self.relay_recv_bucket = TokenBucket.unlimited()
        self.upgrade_backoff = DialBackoff(backoff_base_from_env())
        self.relays = relays
        # Called after a trusted connection ends (e.g. global discovery looks the device up again).
        self.on_disconnected = on_disconnected
        self.admission = Admission(AdmissionLimits.for_open_files(open_file_soft_limit()))
        self._next_traceback = float("-inf")
        self._listeners = ListenerGroup(
            lambda listener, handlers: serve_admitted(
                listener, self.admission, self._handle_incoming, handlers
            )
        )

    # ---- lifecycle -----------------------------------------------------------------
    async def serve(
        self,
        listeners: list[trio.SocketListener],
        announce: list[str],
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``listeners`` (bound by the wiring, ``open_listeners_announced``;
        ``announce`` is what discovery announces for them), dial and join relays until
        cancelled; reports the listen addresses once all of it runs."""
        self._ctx = make_tls_context(self.identity)
        self.apply_rate_limits()
        self.announce_addresses = announce
        self.listen_addresses = bound_addresses(listeners)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._listeners.serve(nursery, listeners)
            nursery.start_soon(self._dial_loop)
            await nursery.start(self.relays.serve, self._handle_relayed)
            log.info("listening on %s", ", ".join(self.listen_addresses))
            task_status.started(self.listen_addresses)

    async def rebind(self, addresses: tuple[ListenAddress, ...]) -> list[str]:
        """Listen on ``addresses`` instead, without a restart or dropping connections;
        raises OSError (still listening as before) when they cannot be bound."""
        listeners, announce = await open_listeners_announced(addresses)
        self._listeners.serve(self._nursery, listeners)
        self.announce_addresses = announce
        self.listen_addresses = bound_addresses(listeners)
        log.info("listening on %s", ", ".join(self.listen_addresses))
        return self.listen_addresses

    def wake_dialer(self) -> None:
        """Config or addresses changed: try dialling now."""
        self.dial_backoff.keep_only({dc.id for dc in self.get_config().devices})
        self.dial_backoff.retry_now()
        self.upgrade_backoff.retry_now()
        self.relays.update()
        self._wake.set()

    def apply_rate_limits(self) -> None:
        cfg = self.get_config()
        self.send_bucket.set_rate(cfg.max_send_kbps * 1024)
        self.recv_bucket.set_rate(cfg.max_recv_kbps * 1024)
        self.relay_send_bucket.set_rate(cfg.relay_max_send_kbps * 1024)
        self.relay_recv_bucket.set_rate(cfg.relay_max_recv_kbps * 1024)
        for device, (send, recv) in self._device_buckets.items():
            dc = cfg.device(device)
            send.set_rate((dc.max_send_kbps if dc else 0) * 1024)
            recv.set_rate((dc.max_recv_kbps if dc else 0) * 1024)

    def is_connected(self, device: DeviceID) -> bool:
        a = self.active.get(device)
        return a is not None and not a.peer.closed

    def is_relayed(self, device: DeviceID) -> bool:
        """Connected, through a relay (a direct connection will replace it)."""
        a = self.active.get(device)
        return a is not None and not a.peer.closed and a.relayed

    async def disconnect(self, device: DeviceID, reason: str) -> None:
        a = self.active.get(device)
        if a is not None:
            await a.peer.close(reason)

    # ---- incoming ------------------------------------------------------------------
    async def _handle_incoming(self, stream: trio.SocketStream, ticket: Ticket) -> None:
        try:
            address = format_tcp_url(*stream.socket.getpeername()[:2])
        except OSError:
            address = "unknown"
        await self.serve_incoming(stream, address, ticket)

    async def serve_incoming(self, stream: trio.abc.Stream, address: str, ticket: Ticket) -> None:
        """One incoming connection, start to end; whatever fails ends only this connection.

        Until the peer is trusted the connection holds ``ticket`` (its place under the
        caps on unauthenticated connections) and must get there before the deadline.
        Any stream will do (fuzz/fuzz_connection.py feeds it from memory).
        """
        if self._ctx is None:
            self._ctx = make_tls_context(self.identity)
        deadline = self.admission.limits.deadline
        try:
            with ticket, trio.CancelScope(deadline=trio.current_time() + deadline) as scope:

                def trusted() -> None:
                    scope.deadline = float("inf")
                    ticket.release()

                try:
                    tls = await tls_accept(stream, self._ctx, handshake_timeout=HANDSHAKE_TIMEOUT)
                except (trio.BrokenResourceError, trio.TooSlowError, ProtocolError) as exc:
                    log.info("TLS handshake with %s failed: %s", address, exc)
                    return
                await self._establish(
                    tls, address=address, expected=None, initiated_by_us=False, on_trusted=trusted
                )
            if scope.cancelled_caught:
                log.info("closed %s: not authenticated within %g s", address, deadline)
        except Exception as exc:
            self._log_connection_failure(address, exc)
        finally:
            await trio.aclose_forcefully(stream)

    async def _handle_relayed(
        self, stream: trio.abc.Stream, invitation: SessionInvitation, relay: RelayURL
    ) -> None:
        """A session a relay invited us to: TLS in the role the relay gave us, then as
        any incoming connection (the inviting device must prove it is who the relay says)."""
        address = str(relay)
        deadline = self.admission.limits.deadline
        # Unauthenticated sessions count against the same caps as direct connections,
        # all of one relay's as coming from the relay's address.
        ticket = self.admission.try_admit(relay.host)
        if ticket is None:
            await trio.aclose_forcefully(stream)
            return
        try:
            with ticket, trio.CancelScope(deadline=trio.current_time() + deadline) as scope:

                def trusted() -> None:
                    scope.deadline = float("inf")
                    ticket.release()

                handshake = tls_accept if invitation.server_socket else tls_connect
                tls = await handshake(stream, self._ctx, handshake_timeout=HANDSHAKE_TIMEOUT)  # type: ignore[arg-type]
                await self._establish(
                    tls,
                    address=address,
                    expected=DeviceID(invitation.from_device),
                    initiated_by_us=False,
                    on_trusted=trusted,
                    relayed=True,
                )
            if scope.cancelled_caught:
                log.info("closed relayed %s: not authenticated within %g s", address, deadline)
        except Exception as exc:
            self._log_connection_failure(address, exc)
        finally:
            await trio.aclose_forcefully(stream)

    def _log_connection_failure(self, address: str, exc: Exception) -> None:
        if isinstance(exc, _EXPECTED_FAILURES):
            log.info("connection with %s closed: %s", address, exc)
            return
        now = trio.current_time()
        with_traceback = now >= self._next_traceback
        if with_traceback:
            self._next_traceback = now + _TRACEBACK_INTERVAL
        log.error(
            "connection with %s closed by an unexpected error: %r",
            address,
            exc,
            exc_info=exc if with_traceback else None,
        )

    async def _dial_contained(
        self, dc: DeviceConfig, addresses: list[Dialable], backoff: DialBackoff | None = None
    ) -> None:
        """``_dial``; whatever fails ends only this attempt and its connection."""
        try:
            await self._dial(dc, addresses, backoff)
        except Exception as exc:
            self._log_connection_failure(f"{dc.id.short_str()} (dialled)", exc)

    # ---- outgoing ------------------------------------------------------------------
    async def _dial_loop(self) -> None:
        while True:
            config = self.get_config()
            now = trio.current_time()
            soonest = now + 1.0
            for dc in config.devices:
                device = dc.id
                # While relayed, keep trying the direct addresses (on their own schedule).
                upgrade = self.is_relayed(device)
                if dc.paused or (self.is_connected(device) and not upgrade):
                    continue
                if device in self._dialing:
                    continue
                backoff = self.upgrade_backoff if upgrade else self.dial_backoff
                due = backoff.due_at(device)
                if due > now:
                    soonest = min(soonest, due)
                    continue
                addresses = self._addresses_for(dc)
                if upgrade:
                    addresses = [a for a in addresses if not _is_relay(a)]
                if not addresses:
                    continue
                self._dialing.add(device)
                self._nursery.start_soon(self._dial_contained, dc, addresses, backoff)
            self._wake = trio.Event()
            with trio.move_on_at(soonest):
                await self._wake.wait()

    def _addresses_for(self, dc: DeviceConfig) -> list[Dialable]:
        dynamic: list[Dialable] = (
            list(self.cache.addresses(dc.id.raw, trio.current_time()))
            if uses_discovery(dc.addresses)
            else []
        )
        # The configured ones first, each address once (by its text).
        chosen: dict[str, Dialable] = {}
        for address in [*explicit_addresses(dc.addresses), *dynamic]:
            chosen.setdefault(str(address), address)
        # Relays last: a direct connection is preferred.
        return sorted(chosen.values(), key=_is_relay)

    async def _dial(
        self, dc: DeviceConfig, addresses: list[Dialable], backoff: DialBackoff | None = None
    ) -> None:
        device = dc.id
        backoff = backoff or self.dial_backoff
        error = "no usable address"
        try:
            for address in addresses:
                if self.is_connected(device) and not self.is_relayed(device):
                    return
                relayed = _is_relay(address)
                try:
                    target = _dial_target(address)
                except P2PSyncError as exc:
                    error = f"{address}: {exc}"
                    continue
                try:
                    if isinstance(target, RelayURL):
                        transport = await self.relays.dial(target, device)
                    else:
                        with trio.fail_after(DIAL_TIMEOUT):
                            transport = await trio.open_tcp_stream(target.host, target.port)
                    ctx = self._ctx
                    assert ctx is not None
                    tls = await tls_connect(transport, ctx, handshake_timeout=HANDSHAKE_TIMEOUT)
                except (
                    OSError,
                    trio.TooSlowError,
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    P2PSyncError,  # a protocol error, e.g. a TLS server that agreed on no ALPN
                ) as exc:
                    log.debug("dial %s at %s failed: %s", device.short_str(), address, exc)
                    error = f"{address}: {exc or type(exc).__name__}"
                    continue
                self._dialing.discard(device)
                text = str(address)
                ok = await self._establish(
                    tls, address=text, expected=device, initiated_by_us=True, relayed=relayed
                )
                if ok:
                    return  # the connection's end was recorded in dial_backoff.disconnected
                error = f"{address}: the connection was refused or failed during the handshake"
                if text in self.cache.addresses(device.raw, trio.current_time()):
                    self.cache.forget(device.raw, text)
            wait = backoff.failed(device, trio.current_time(), error)
            log.debug("next dial of %s in %.1f s (%s)", device.short_str(), wait, error)
        finally:
            self._dialing.discard(device)
            self._wake.set()

    # ---- both directions -----------------------------------------------------------
    async def _establish(
        self,
        tls: TLSStream,
        *,
        address: str,
        expected: DeviceID | None,
        initiated_by_us: bool,
        on_trusted: Callable[[], None] = lambda: None,
        relayed: bool = False,
    ) -> bool:
        """Authenticate, exchange Hellos, tie-break, then serve. True if it was accepted.

        ``on_trusted`` is called once the peer is known to be a trusted device.
        """
        try:
            device = authenticate_peer(
                tls.peer_certificate_chain_der(),
                our_id=self.local,
                expected=expected,
                is_known=lambda _d: True,
            )
        except (PeerRejectedError, RemoteProtocolError) as exc:
            log.warning("refused connection with %s: %s", address, exc)
            await trio.aclose_forcefully(tls)
            return False
        config = self.get_config()
        wire = codec_for_alpn(tls.alpn_protocol())
        if wire is None:  # the handshake agrees only on protocols we speak; never trust it
            log.warning(
                "refused connection with %s: unknown protocol %r", address, tls.alpn_protocol()
            )
            await trio.aclose_forcefully(tls)
            return False
        protocol = Connection(
            Hello(
                device_name=config.name,
                client_name=CLIENT_NAME,
                client_version=__version__,
                timestamp=time.time_ns(),
            ),
            wire=wire,
        )
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                await tls.send_all(protocol.start())
                hello = await _receive_hello(tls, protocol)
        except (
            trio.TooSlowError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ProtocolError,
        ) as exc:
            log.info("Hello exchange with %s (%s) failed: %s", device.short_str(), address, exc)
            await trio.aclose_forcefully(tls)
            return False
        dc = config.device(device)
        if dc is None:
            log.warning(
                "device %s (%r) at %s is not trusted; recorded as pending",
                device,
                hello.device_name,
                address,
            )
            await trio.to_thread.run_sync(
                self.pending.try_add_device,
                PendingDevice(str(device), hello.device_name, address, time.time()),
            )
            self.events.emit(
                "DeviceRejected", device=str(device), name=hello.device_name, address=address
            )
            await _close_quietly(tls, protocol, "unknown device")
            return False
        if dc.paused:
            await _close_quietly(tls, protocol, "device paused")
            return False
        existing = self.active.get(device)
        if existing is not None and not existing.peer.closed:
            if relayed and not existing.relayed:  # direct connections are preferred
                await _close_quietly(tls, protocol, "a direct connection exists")
                return False
            if existing.relayed == relayed and existing.initiated_by_us != initiated_by_us:
                winner_is_ours = self.local.raw > device.raw  # the greater ID's dial wins
                if initiated_by_us != winner_is_ours:
                    await _close_quietly(tls, protocol, "duplicate connection")
                    return False
            await existing.peer.close("replaced by a newer connection")
        on_trusted()
        send_bucket, recv_bucket = self._buckets_for(device)
        relay_buckets = (self.relay_send_bucket, self.relay_recv_bucket) if relayed else ()
        stream = RateLimitedStream(
            tls,
            send_buckets=[self.send_bucket, send_bucket, *relay_buckets[:1]],
            receive_buckets=[self.recv_bucket, recv_bucket, *relay_buckets[1:]],
        )
        peer = PeerConnection(stream, protocol, device, address)
        self.active[device] = _Active(peer, initiated_by_us, relayed)
        self.dial_backoff.connected(device, trio.current_time(), time.time())
        log.info(
            "connected to %s (%s) at %s%s over %s, running %s %s",
            device.short_str(),
            hello.device_name,
            address,
            " (relayed)" if relayed else "",
            wire.name,
            hello.client_name,
            hello.client_version,
        )
        try:
            await self.serve_peer(peer)
        finally:
            if self.active.get(device) is not None and self.active[device].peer is peer:
                del self.active[device]
            self._record_disconnect(device, peer)
            self._wake.set()
            log.info("disconnected from %s: %s", device.short_str(), peer.close_reason)
            self._hint_certificate_name(wire, protocol, device)
            self.on_disconnected(device)
        return True

    def _hint_certificate_name(
        self, wire: WireCodec, protocol: Connection, device: DeviceID
    ) -> None:
        """Stock Syncthing drops a known device right after the Hellos when the device's
        certificate name is not "syncthing" (identities made before p2psync 0.1)."""
        name = self.identity.certificate_name
        if wire.alpn != BEP_ALPN or protocol.their_cluster_config_seen or name == "syncthing":
            return
        log.warning(
            "%s (Syncthing) closed the connection before accepting us: our certificate's "
            "name is %r, and Syncthing expects 'syncthing'. On that Syncthing device, set "
            "this device's Certificate Name (Advanced settings) to %r; see docs/interop.md",
            device.short_str(),
            name,
            name,
        )

    def _record_disconnect(self, device: DeviceID, peer: PeerConnection) -> None:
        """Schedule the next dial: soon after a useful connection, backed off after one the
        peer closed at once (it refused us)."""
        if self.is_connected(device):
            return  # this one was replaced; the newer connection is up
        reason = peer.close_reason or "disconnected"
        wait = self.dial_backoff.disconnected(device, trio.current_time(), time.time(), reason)
        state = self.dial_backoff.state(device)
        if state.refusal:
            log.info(
                "%s refused the connection (%s); next try in %.0f s",
                device.short_str(),
                state.refusal,
                wait,
            )

    def _buckets_for(self, device: DeviceID) -> tuple[TokenBucket, TokenBucket]:
        if device not in self._device_buckets:
            dc = self.get_config().device(device)
            self._device_buckets[device] = (
                TokenBucket((dc.max_send_kbps if dc else 0) * 1024),
                TokenBucket((dc.max_recv_kbps if dc else 0) * 1024),
            )
        return self._device_buckets[device]


async def _receive_hello(stream: trio.abc.Stream, protocol: Connection) -> Hello:
    while True:
        event = protocol.next_event()
        if isinstance(event, Hello):
            return event
        if event is not NEED_DATA:
            raise trio.BrokenResourceError("peer closed before its Hello")
        data = await stream.receive_some(64 * 1024)
        protocol.receive_data(bytes(data))
        if not data:
            event = protocol.next_event()
            if isinstance(event, Hello):
                return event
            raise trio.BrokenResourceError("peer closed before its Hello")


async def _close_quietly(stream: trio.abc.Stream, protocol: Connection, reason: str) -> None:
    with trio.move_on_after(2):
        try:
            await stream.send_all(protocol.send(Close(reason=reason)))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
            pass
    await trio.aclose_forcefully(stream)
