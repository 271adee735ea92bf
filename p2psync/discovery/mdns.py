"""LAN discovery over mDNS: announce our device ID and port, find peers, feed the address cache.

zeroconf runs its own asyncio loop in a thread; we only use its synchronous API, always from
trio worker threads, and its browse callbacks reach trio through the run's TrioToken. Nothing
announced on the LAN is trusted: a record for a known device only adds addresses to the cache
for ``ttl`` seconds (a spoofed one costs a failed TLS handshake later), and an unknown device is
only listed in :meth:`MdnsDiscovery.discovered`, never dialed.

Record format: service type ``_p2psync._tcp.local.``, instance name = the formatted device ID
(exactly 63 characters, the DNS label limit), TXT ``id=<device id>`` (authoritative; the
instance name is ignored when reading) and ``v=<record version>``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from ..endpoints import Endpoint
from ..errors import ConfigError, DeviceIDError, RemoteProtocolError
from ..identity import DeviceID
from .cache import AddressCache

log = logging.getLogger(__name__)

SERVICE_TYPE = "_p2psync._tcp.local."
RECORD_VERSION = "1"
CACHE_SOURCE = "mdns"
INTERFACES_ENV = "P2PSYNC_MDNS_INTERFACES"

ListenPort = int | Callable[[], int | None]


# --------------------------------------------------------------------------- pure helpers


# The user-facing default: every interface. Tests never use it (they pass 127.0.0.1).
ALL_INTERFACES = InterfaceChoice.All


def mdns_interfaces_from_env(
    default: list[str] | None, environ: Mapping[str, str] | None = None
) -> list[str] | InterfaceChoice:
    """Interfaces (IP addresses) for zeroconf: $P2PSYNC_MDNS_INTERFACES, else ``default``.

    The variable is a comma-separated list of IP addresses. An empty or missing config
    list means every interface (``InterfaceChoice.All``).
    """
    env = os.environ if environ is None else environ
    raw = env.get(INTERFACES_ENV, "").strip()
    if raw:
        chosen = [part.strip() for part in raw.split(",") if part.strip()]
        origin = f"${INTERFACES_ENV}"
    else:
        chosen = list(default or [])
        origin = "the mDNS interfaces setting"
    for address in chosen:
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise ConfigError(f"{origin} contains {address!r}, which is not an IP address") from exc
    return chosen or ALL_INTERFACES


def tcp_url(host: str, port: int) -> str:
    """``tcp://host:port``, with IPv6 hosts in brackets (the dialer's address format)."""
    return str(Endpoint("tcp", host, port))


@dataclass(frozen=True, slots=True)
class Announcement:
    """What a resolved mDNS record claims: a device ID reachable at some addresses."""

    device_id: DeviceID
    addresses: tuple[str, ...]


def parse_announcement(
    properties: Mapping[bytes, bytes | None], port: int | None, hosts: Sequence[str]
) -> Announcement:
    """Turn a resolved record (TXT properties, SRV port, A/AAAA hosts) into an Announcement.

    Raises RemoteProtocolError when the record is unusable (no or bad id, bad port, no
    usable address).
    """
    raw_id = properties.get(b"id")
    if not raw_id:
        raise RemoteProtocolError("mDNS record has no 'id' TXT entry")
    try:
        device_id = DeviceID.parse(raw_id.decode("ascii"))
    except (UnicodeDecodeError, DeviceIDError) as exc:
        raise RemoteProtocolError(f"mDNS record has a malformed device ID: {exc}") from exc
    if port is None or not 0 < port < 65536:
        raise RemoteProtocolError(f"mDNS record has an invalid port {port!r}")
    urls = []
    for host in hosts:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if ip.is_unspecified or ip.is_multicast:
            continue
        url = tcp_url(host, port)
        if url not in urls:
            urls.append(url)
    if not urls:
        raise RemoteProtocolError("mDNS record has no usable address")
    return Announcement(device_id, tuple(urls))


# --------------------------------------------------------------------------- zeroconf side
# Everything below in this section blocks; it runs in trio worker threads only.


@dataclass(frozen=True, slots=True)
class _Resolved:
    properties: dict[bytes, bytes | None]
    port: int | None
    hosts: list[str]


class _Zeroconf:
    """The synchronous zeroconf calls we make, in one place."""

    def __init__(self, interfaces: list[str] | InterfaceChoice, device_id: DeviceID) -> None:
        try:
            self._zc = Zeroconf(interfaces=interfaces, use_asyncio=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot open mDNS sockets on interfaces {interfaces}: {exc}"
            ) from exc
        self._interfaces = interfaces
        self._device_id = device_id
        self.instance_name = f"{device_id}.{SERVICE_TYPE}"
        self._registered: ServiceInfo | None = None
        self._browser: ServiceBrowser | None = None

    def announce(self, port: int | None) -> None:
        """Register, update or withdraw our service so it advertises ``port`` (None = none)."""
        if port is None:
            if self._registered is not None:
                self._zc.unregister_service(self._registered)
                self._registered = None
            return
        info = ServiceInfo(
            SERVICE_TYPE,
            self.instance_name,
            port=port,
            properties={"id": str(self._device_id), "v": RECORD_VERSION},
            server=f"{str(self._device_id).lower()}.local.",
            parsed_addresses=self._own_addresses(),
        )
        if self._registered is None:
            # No probing: the name is derived from our identity, and another claim on it is
            # a spoof that TLS rejects anyway (probing would let it block our announcement).
            self._zc.register_service(info, cooperating_responders=True)
        else:
            self._zc.update_service(info)
        self._registered = info

    def browse(self, handler: Callable[..., None]) -> None:
        """Start browsing; ``handler(zeroconf=, service_type=, name=, state_change=)``
        runs on the browser's own thread."""
        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[handler])

    def resolve(self, name: str, timeout: float) -> _Resolved | None:
        """Resolve one service instance (from zeroconf's cache or the network)."""
        try:
            info = ServiceInfo(SERVICE_TYPE, name)
            if not info.request(self._zc, timeout * 1000):
                return None
        except ZeroconfError as exc:
            log.debug("mDNS: cannot resolve %r: %s", name, exc)
            return None
        return _Resolved(dict(info.properties), info.port, info.parsed_scoped_addresses())

    def close(self) -> None:
        """Stop browsing, say goodbye, stop zeroconf's threads."""
        try:
            if self._browser is not None:
                self._browser.cancel()
            if self._registered is not None:
                self._zc.unregister_service(self._registered)
        finally:
            self._zc.close()

    def _own_addresses(self) -> list[str]:
        if isinstance(self._interfaces, list):
            return list(self._interfaces)
        from zeroconf._utils.net import get_all_addresses  # not re-exported by zeroconf

        found = [a for a in get_all_addresses() if not ipaddress.ip_address(a).is_loopback]
        return found or ["127.0.0.1"]


# --------------------------------------------------------------------------- trio side


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """An unknown device seen on the LAN; shown to the user, never dialed automatically."""

    device_id: DeviceID
    addresses: tuple[str, ...]
    last_seen: float


@dataclass(frozen=True, slots=True)
class MdnsStatistics:
    announced_port: int | None
    services_present: int
    resolves_ok: int
    resolves_failed: int
    ignored_own: int
    ignored_malformed: int
    known_cached: int
    unknown_seen: int
    dropped_overflow: int


@dataclass
class _Counters:
    resolves_ok: int = 0
    resolves_failed: int = 0
    ignored_own: int = 0
    ignored_malformed: int = 0
    known_cached: int = 0
    unknown_seen: int = 0
    dropped_overflow: int = 0


_RESOLVE = "resolve"
_REMOVE = "remove"


@dataclass(eq=False)
class MdnsDiscovery:
    """Announces this device over mDNS and turns what it hears into cache entries.

    ``listen_port`` may be a callable; it is polled every ``port_poll_interval`` seconds and
    the announcement follows it (``None`` withdraws it). ``is_known(raw_device_id)`` decides
    between the address cache (known) and the discovered table (unknown).
    """

    device_id: DeviceID
    listen_port: ListenPort
    interfaces: list[str] | InterfaceChoice
    cache: AddressCache
    is_known: Callable[[bytes], bool]
    on_discovered: Callable[[DiscoveredDevice], None] | None = None
    ttl: float = 120.0
    refresh_interval: float | None = None  # default ttl / 3
    resolve_timeout: float = 2.0
    retry_after: float = 1.0  # a failed resolve is retried after 1, 2, 4 ... s
    port_poll_interval: float = 2.0
    max_services: int = 256
    max_discovered: int = 64

    _pending: dict[str, str] = field(default_factory=dict, init=False)
    _wakeup: trio.Event = field(default_factory=trio.Event, init=False)
    _changed: trio.Event = field(default_factory=trio.Event, init=False)
    _present: set[str] = field(default_factory=set, init=False)
    _resolving: set[str] = field(default_factory=set, init=False)
    _resolve_again: set[str] = field(default_factory=set, init=False)
    _seen_by_name: dict[str, Announcement] = field(default_factory=dict, init=False)
    _discovered: dict[bytes, DiscoveredDevice] = field(default_factory=dict, init=False)
    _announced_port: int | None = field(default=None, init=False)
    _counters: _Counters = field(default_factory=_Counters, init=False)
    _limiter: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(4), init=False
    )
    open_zeroconf: Callable[[list[str] | InterfaceChoice, DeviceID], _Zeroconf] = field(
        default=_Zeroconf, repr=False
    )  # tests wrap it to inject failures

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Announce, browse and resolve until cancelled; started() once announced and browsing."""
        token = trio.lowlevel.current_trio_token()

        def on_state_change(
            zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            # zeroconf's browser thread: hand over to trio, never block here.
            what = _REMOVE if state_change is ServiceStateChange.Removed else _RESOLVE
            try:
                token.run_sync_soon(self._note, name, what)
            except trio.RunFinishedError:
                pass

        zc = await trio.to_thread.run_sync(self.open_zeroconf, self.interfaces, self.device_id)
        try:
            port = self._current_port()
            await trio.to_thread.run_sync(zc.announce, port)
            self._announced_port = port
            await trio.to_thread.run_sync(zc.browse, on_state_change)
            log.info(
                "mDNS: announcing %s on port %s (interfaces %s)",
                self.device_id.short_str(),
                port,
                self.interfaces,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._process_events, zc, nursery)
                nursery.start_soon(self._refresh_loop, zc, nursery)
                if callable(self.listen_port):
                    nursery.start_soon(self._follow_port, zc)
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(zc.close)
            log.info("mDNS: stopped for %s", self.device_id.short_str())

    def discovered(self) -> list[DiscoveredDevice]:
        """Unknown devices seen within the last ``ttl`` seconds, most recent first."""
        now = trio.current_time()
        for raw in [r for r, d in self._discovered.items() if now - d.last_seen > self.ttl]:
            del self._discovered[raw]
        return sorted(self._discovered.values(), key=lambda d: -d.last_seen)

    async def wait_changed(self) -> None:
        """Wait until what discovery knows changes (cache, discovered table, statistics)."""
        await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def statistics(self) -> MdnsStatistics:
        c = self._counters
        return MdnsStatistics(
            announced_port=self._announced_port,
            services_present=len(self._present),
            resolves_ok=c.resolves_ok,
            resolves_failed=c.resolves_failed,
            ignored_own=c.ignored_own,
            ignored_malformed=c.ignored_malformed,
            known_cached=c.known_cached,
            unknown_seen=c.unknown_seen,
            dropped_overflow=c.dropped_overflow,
        )

    # -- event intake (runs on the trio thread via run_sync_soon) --

    def _note(self, name: str, what: str) -> None:
        log.debug("mDNS: %s %r", what, name)
        if (
            what == _RESOLVE
            and name not in self._present
            and name not in self._pending
            and len(self._present) + len(self._pending) >= self.max_services
        ):
            self._counters.dropped_overflow += 1
            self._touch()
            return
        self._pending[name] = what
        self._wakeup.set()

    async def _process_events(self, zc: _Zeroconf, nursery: trio.Nursery) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            pending, self._pending = self._pending, {}
            for name, what in pending.items():
                if name.lower() == zc.instance_name.lower():
                    self._counters.ignored_own += 1
                elif what == _REMOVE:
                    self._forget_service(name)
                else:
                    self._present.add(name)
                    self._schedule_resolve(zc, nursery, name)
            self._touch()

    async def _refresh_loop(self, zc: _Zeroconf, nursery: trio.Nursery) -> None:
        """Re-resolve present services so live peers stay in the cache past one ttl."""
        interval = self._refresh_interval()
        while True:
            await trio.sleep(interval)
            for name in list(self._present):
                self._schedule_resolve(zc, nursery, name)

    async def _follow_port(self, zc: _Zeroconf) -> None:
        while True:
            await trio.sleep(self.port_poll_interval)
            port = self._current_port()
            if port != self._announced_port:
                await trio.to_thread.run_sync(zc.announce, port)
                log.info("mDNS: listen port changed %s -> %s", self._announced_port, port)
                self._announced_port = port
                self._touch()

    def _current_port(self) -> int | None:
        port = self.listen_port() if callable(self.listen_port) else self.listen_port
        return port or None

    # -- resolving --

    def _schedule_resolve(self, zc: _Zeroconf, nursery: trio.Nursery, name: str) -> None:
        if name in self._resolving:
            self._resolve_again.add(name)
            return
        self._resolving.add(name)
        nursery.start_soon(self._resolve, zc, name)

    async def _resolve(self, zc: _Zeroconf, name: str) -> None:
        """Resolve ``name`` (again while asked to). A resolve that times out while the
        service is still present (an answer lost on a busy host) is retried after 1, 2,
        4 ... s, up to the refresh interval: waiting for the next refresh would leave the
        peer unreachable for a third of the ttl."""
        retry_after = self.retry_after
        try:
            while True:
                self._resolve_again.discard(name)
                resolved = await trio.to_thread.run_sync(
                    zc.resolve, name, self.resolve_timeout, limiter=self._limiter
                )
                if name in self._present:
                    self._record(name, resolved)
                    self._touch()
                    if resolved is None and retry_after < self._refresh_interval():
                        await trio.sleep(retry_after)
                        retry_after *= 2
                        continue
                if name not in self._resolve_again:
                    return
        finally:
            self._resolving.discard(name)

    def _refresh_interval(self) -> float:
        return self.refresh_interval if self.refresh_interval is not None else self.ttl / 3

    def _record(self, name: str, resolved: _Resolved | None) -> None:
        if resolved is None:
            self._counters.resolves_failed += 1
            return
        self._counters.resolves_ok += 1
        try:
            announcement = parse_announcement(resolved.properties, resolved.port, resolved.hosts)
        except RemoteProtocolError as exc:
            self._counters.ignored_malformed += 1
            log.debug("mDNS: ignoring %r: %s", name, exc)
            return
        device = announcement.device_id
        if device == self.device_id:
            self._counters.ignored_own += 1
            return
        now = trio.current_time()
        self._seen_by_name[name] = announcement
        if self.is_known(device.raw):
            self._discovered.pop(device.raw, None)
            self.cache.add(
                device.raw, list(announcement.addresses), source=CACHE_SOURCE, ttl=self.ttl, now=now
            )
            self._counters.known_cached += 1
            log.debug("mDNS: %s at %s", device.short_str(), announcement.addresses)
            return
        self._counters.unknown_seen += 1
        previous = self._discovered.get(device.raw)
        entry = DiscoveredDevice(device, announcement.addresses, now)
        self._discovered[device.raw] = entry
        if len(self._discovered) > self.max_discovered:
            oldest = min(self._discovered.values(), key=lambda d: d.last_seen)
            del self._discovered[oldest.device_id.raw]
        if previous is None or previous.addresses != entry.addresses:
            log.info("mDNS: unknown device %s at %s", device, announcement.addresses)
            if self.on_discovered is not None:
                self.on_discovered(entry)

    def _forget_service(self, name: str) -> None:
        """The service said goodbye (or expired): drop what only it told us."""
        self._present.discard(name)
        self._resolve_again.discard(name)
        announcement = self._seen_by_name.pop(name, None)
        if announcement is None:
            return
        raw = announcement.device_id.raw
        still_claimed = {
            url
            for other in self._seen_by_name.values()
            if other.device_id.raw == raw
            for url in other.addresses
        }
        sources = self.cache.sources(raw, trio.current_time())
        for url in announcement.addresses:
            if url not in still_claimed and sources.get(url) == CACHE_SOURCE:
                self.cache.forget(raw, url)
        if not still_claimed:
            self._discovered.pop(raw, None)


async def serve_mdns(
    *,
    device_id: DeviceID,
    listen_port: ListenPort,
    interfaces: list[str] | InterfaceChoice,
    cache: AddressCache,
    is_known: Callable[[bytes], bool],
    on_discovered: Callable[[DiscoveredDevice], None] | None = None,
    ttl: float = 120.0,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run LAN discovery until cancelled; ``task_status.started(MdnsDiscovery)`` when ready."""
    discovery = MdnsDiscovery(
        device_id=device_id,
        listen_port=listen_port,
        interfaces=interfaces,
        cache=cache,
        is_known=is_known,
        on_discovered=on_discovered,
        ttl=ttl,
    )
    await discovery.run(task_status=task_status)
