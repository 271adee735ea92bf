"""Syncthing's local discovery v4 with trio: UDP broadcasts on port 21027 (IPv4) and
multicasts to ``[ff12::8384]:21027`` (IPv6, link-local scope), as Syncthing sends them.

Every ``interval`` seconds (30, as Syncthing) we broadcast our announcement to the
broadcast address of each chosen interface (and multicast it on each chosen IPv6
interface), and we listen on the port for everyone else's. Announcements from known
devices put their addresses into the AddressCache for ``ttl`` (90 s); an unspecified
host (``tcp://0.0.0.0:22000``, ``tcp://:22000``) becomes the packet's source address.
Seeing a device for the first time, or with a new instance ID (it restarted), triggers
an announcement of our own at once, so it learns of us without waiting for the next
round.

Which interfaces: ``$P2PSYNC_MDNS_INTERFACES`` / ``discovery.mdns_interfaces`` (IP
addresses), the same restriction as mDNS; without one, every non-loopback IPv4
interface. The socket binds ``0.0.0.0:21027`` with SO_REUSEADDR, so several devices on
one host (and Syncthing) all receive broadcasts. IPv6: an IPv6 address in that list picks
its interface for multicast (the group is joined there only); without a list, every
interface with a non-loopback IPv6 address. A separate ``[::]:21027`` socket (IPv6 only)
joins the group on exactly those interfaces, with a hop limit of 1.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ..errors import ConfigError, RemoteProtocolError
from ..identity import DeviceID
from ..protocol.local_discovery import MAX_PACKET, PORT, Announce, decode, encode
from ..protocol.relay import is_relay_url
from .cache import AddressCache

log = logging.getLogger("p2psync.discovery.local")

CACHE_SOURCE = "local-v4"
INTERVAL = 30.0
TTL = 90.0
V6_GROUP = "ff12::8384"  # Syncthing's: transient, link-local scope


def broadcast_targets(interfaces: list[str] | None) -> list[str]:
    """The IPv4 broadcast address of each chosen interface address (all non-loopback
    IPv4 interfaces for None). An address no interface has is a ConfigError."""
    import ifaddr  # zeroconf's dependency; imported here, where it is needed

    networks: dict[str, ipaddress.IPv4Network] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                networks[ip.ip] = ipaddress.IPv4Network(
                    f"{ip.ip}/{ip.network_prefix}", strict=False
                )
    if interfaces is None:
        chosen = [a for a, n in networks.items() if not n.network_address.is_loopback]
    else:
        chosen = [a for a in interfaces if ipaddress.ip_address(a).version == 4]
        missing = [a for a in chosen if a not in networks]
        if missing:
            raise ConfigError(f"no interface has the address {missing[0]} (local discovery)")
    targets = []
    for address in chosen:
        network = networks[address]
        target = str(network.broadcast_address if network.prefixlen < 31 else address)
        if target not in targets:
            targets.append(target)
    return targets


def multicast_interfaces(interfaces: list[str] | None) -> list[int]:
    """The index of each interface that IPv6 multicast may use: the owners of the IPv6
    addresses in ``interfaces`` (a zone such as ``%eth0`` is ignored), or for None every
    interface with a non-loopback IPv6 address. An address no interface has is a
    ConfigError."""
    import ifaddr

    owner: dict[ipaddress.IPv6Address, int] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str) and adapter.index is not None:
                owner[ipaddress.IPv6Address(ip.ip[0].split("%", 1)[0])] = adapter.index
    if interfaces is None:
        chosen = [index for address, index in owner.items() if not address.is_loopback]
    else:
        chosen = []
        for text in interfaces:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if address.version != 6:
                continue
            if address not in owner:
                raise ConfigError(f"no interface has the address {text} (local discovery)")
            chosen.append(owner[address])  # type: ignore[index]
    return sorted(set(chosen))


@dataclass
class _Seen:
    instance_id: int


class LocalDiscoveryV4:
    def __init__(
        self,
        *,
        device_id: DeviceID,
        get_addresses: Callable[[], list[str]],
        cache: AddressCache,
        is_known: Callable[[bytes], bool],
        targets: list[str],
        v6_interfaces: Sequence[int] = (),
        port: int = PORT,
        interval: float = INTERVAL,
        ttl: float = TTL,
    ) -> None:
        self.device_id = device_id
        self.get_addresses = get_addresses
        self.cache = cache
        self.is_known = is_known
        self.targets = targets
        self.v6_interfaces = list(v6_interfaces)
        self.port = port
        self.interval = interval
        self.ttl = ttl
        self.instance_id = secrets.randbits(63)
        self.seen: dict[bytes, _Seen] = {}
        self._announce_now = trio.Event()
        self.sent = 0
        self.received = 0

    async def serve(
        self, *, task_status: trio.TaskStatus[LocalDiscoveryV4] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            await sock.bind(("0.0.0.0", self.port))
            log.info("local discovery (Syncthing v4) on UDP %d, to %s", self.port, self.targets)
            v6 = await self._open_v6() if self.v6_interfaces else None
            with v6 if v6 is not None else contextlib.nullcontext():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_loop, sock, v6)
                    nursery.start_soon(self._receive_loop, sock)
                    if v6 is not None:
                        nursery.start_soon(self._receive_loop, v6)
                    task_status.started(self)

    async def _open_v6(self) -> trio.socket.SocketType:
        """``[::]:port``, IPv6 only, in the group on each chosen interface, hop limit 1."""
        sock = trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            await sock.bind(("::", self.port))
            group = socket.inet_pton(socket.AF_INET6, V6_GROUP)
            for index in self.v6_interfaces:
                sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + struct.pack("@I", index)
                )
        except BaseException:
            sock.close()
            raise
        log.info(
            "local discovery (Syncthing v4) on UDP [::]:%d, multicast %s on interfaces %s",
            self.port,
            V6_GROUP,
            self.v6_interfaces,
        )
        return sock

    def packet(self) -> bytes:
        addresses = [a for a in self.get_addresses() if a.startswith("tcp") or is_relay_url(a)]
        return encode(Announce(self.device_id.raw, tuple(addresses), self.instance_id))

    async def _send_loop(
        self, sock: trio.socket.SocketType, v6: trio.socket.SocketType | None
    ) -> None:
        while True:
            self._announce_now = trio.Event()
            packet = self.packet()
            sends: list[tuple[trio.socket.SocketType, tuple[str | int, ...], int]] = [
                (sock, (target, self.port), 0) for target in self.targets
            ]
            if v6 is not None:
                sends += [(v6, (V6_GROUP, self.port, 0, i), i) for i in self.v6_interfaces]
            for through, target, index in sends:
                try:
                    if index:  # the scope ID names the interface; say it twice
                        through.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
                    await through.sendto(packet, target)
                    self.sent += 1
                except OSError as exc:  # an interface went away: next round tries again
                    log.debug("local discovery: sending to %s failed: %s", target, exc)
            with trio.move_on_after(self.interval):
                await self._announce_now.wait()

    async def _receive_loop(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, source = await sock.recvfrom(MAX_PACKET)
            host = _with_zone(source)
            try:
                announce = decode(data)
            except RemoteProtocolError as exc:
                log.debug("local discovery: bad packet from %s: %s", host, exc)
                continue
            if announce is None or announce.device_id == self.device_id.raw:
                continue
            self.received += 1
            self.handle(announce, host, trio.current_time())

    def handle(self, announce: Announce, source: str, now: float) -> None:
        """Cache a known device's addresses; answer a new device or instance at once."""
        previous = self.seen.get(announce.device_id)
        self.seen[announce.device_id] = _Seen(announce.instance_id)
        if previous is None or previous.instance_id != announce.instance_id:
            self._announce_now.set()
        if not self.is_known(announce.device_id):
            return
        addresses = [a for a in (_fill_host(a, source) for a in announce.addresses) if a]
        self.cache.replace(
            announce.device_id, addresses, source=CACHE_SOURCE, ttl=self.ttl, now=now
        )
        log.debug("local discovery: %s at %s", DeviceID(announce.device_id).short_str(), addresses)


def _with_zone(source: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """The sender's host; an IPv6 link-local one with its zone (``fe80::1%eth0``), as
    it can only be dialled through the interface the packet came in on."""
    host = source[0]
    scope = source[3] if len(source) == 4 else 0
    if scope and "%" not in host and ipaddress.IPv6Address(host).is_link_local:
        try:
            return f"{host}%{socket.if_indextoname(scope)}"
        except OSError:
            return f"{host}%{scope}"
    return host


def _fill_host(address: str, source: str) -> str | None:
    """``address`` with an unspecified host replaced by ``source``; None if unusable."""
    if is_relay_url(address):
        return address
    scheme, sep, rest = address.partition("://")
    if scheme not in ("tcp", "tcp4", "tcp6") or not sep:
        return None  # quic and others: not dialled by us
    host, _, port = rest.rpartition(":")
    if not port.isdigit():
        return None
    if host in ("", "0.0.0.0", "[::]"):
        host = f"[{source}]" if ":" in source else source
    return f"tcp://{host}:{port}"
