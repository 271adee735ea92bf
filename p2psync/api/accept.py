"""Accept connections within caps, and stay quiet when accept(2) runs out of resources.

``trio.serve_listeners`` accepts without limit and, while accept(2) fails with EMFILE
(the file-handle table is full), logs a traceback every 0.1 s. ``serve_capped`` replaces
it for our HTTP servers (the control API, the discovery server): it holds at most
``ConnectionCaps.total`` connections (pausing accepts at the cap, so the rest wait in the
kernel's backlog), closes a connection at once when its remote address already holds
``per_address``, and turns accept errors from exhausted resources into one warning per
``WARN_INTERVAL`` seconds with a count of what it left unsaid.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import resource
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

# accept(2) errors that mean "out of resources, try again later" (as in trio)
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
RETRY_AFTER = 0.1  # seconds to wait before accepting again after such an error
WARN_INTERVAL = 10.0  # seconds between two warnings of one kind
FD_RESERVE = 64  # file handles left for everything but connections (stores, logs, threads)


@dataclass(frozen=True)
class ConnectionCaps:
    """At most ``total`` open connections, at most ``per_address`` from one remote
    address (an IPv6 /64 counts as one address); ``per_address`` 0 = no such cap."""

    total: int
    per_address: int = 0

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_address < 0:
            raise ValueError(f"bad connection caps: {self}")


def total_cap_below_fd_limit(wanted: int, reserve: int = FD_RESERVE) -> int:
    """``wanted``, lowered so that the connections leave ``reserve`` handles free under
    this process's soft RLIMIT_NOFILE (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))


def address_key(host: str) -> str:
    """The key connections are counted under: the IP, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address) + "/64"
    return str(ip)


class RateLimitedLog:
    """A logger call that speaks at most once per ``interval`` seconds per key and says
    how many messages it swallowed in between."""

    def __init__(self, logger: logging.Logger, interval: float = WARN_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._swallowed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = trio.current_time()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._swallowed[key] = self._swallowed.get(key, 0) + 1
            return
        self._last[key] = now
        swallowed = self._swallowed.pop(key, 0)
        if swallowed:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, swallowed, now - last if last is not None else 0.0)
        self.logger.warning(message, *args)


class ConnectionGate:
    """Counts open connections per address and in total; ``statistics()`` for tests
    and metrics."""

    def __init__(self, caps: ConnectionCaps) -> None:
        self.caps = caps
        self.slots = trio.CapacityLimiter(caps.total)
        self.by_address: dict[str, int] = {}
        self.refused = 0

    def enter(self, key: str) -> bool:
        held = self.by_address.get(key, 0)
        if self.caps.per_address and held >= self.caps.per_address:
            self.refused += 1
            return False
        self.by_address[key] = held + 1
        return True

    def leave(self, key: str) -> None:
        held = self.by_address[key] - 1
        if held:
            self.by_address[key] = held
        else:
            del self.by_address[key]

    def statistics(self) -> dict[str, int]:
        return {
            "open": int(self.slots.borrowed_tokens),
            "addresses": len(self.by_address),
            "refused_per_address": self.refused,
        }


Handler = Callable[[Any], Awaitable[object]]


async def serve_capped(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[Any]],
    gate: ConnectionGate,
    *,
    handler_nursery: trio.Nursery,
    logger: logging.Logger,
) -> None:
    """Accept on every listener until cancelled, each connection running ``handler`` in
    ``handler_nursery`` (the stream is closed afterwards). Closes the listeners."""
    warn = RateLimitedLog(logger)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, handler, listener, gate, handler_nursery, warn)


async def _accept_loop(
    handler: Handler,
    listener: trio.abc.Listener[Any],
    gate: ConnectionGate,
    handler_nursery: trio.Nursery,
    warn: RateLimitedLog,
) -> None:
    async with listener:
        while True:
            slot = object()
            await gate.slots.acquire_on_behalf_of(slot)
            try:
                stream = await _accept(listener, warn)
            except BaseException:
                gate.slots.release_on_behalf_of(slot)
                raise
            key = address_key(_peer_host(stream))
            if not gate.enter(key):
                gate.slots.release_on_behalf_of(slot)
                await trio.aclose_forcefully(stream)
                warn.warning(
                    "refused",
                    "refused a connection from %s: it already holds %d (the cap per address)",
                    key,
                    gate.caps.per_address,
                )
                continue
            handler_nursery.start_soon(_run_handler, handler, stream, gate, key, slot)


async def _accept(listener: trio.abc.Listener[Any], warn: RateLimitedLog) -> Any:
    while True:
        try:
            return await listener.accept()
        except OSError as exc:
            if exc.errno not in CAPACITY_ERRNOS:
                raise
            warn.warning(
                "accept",
                "accept failed: %s; retrying every %.1f s",
                os.strerror(exc.errno or 0),
                RETRY_AFTER,
            )
            await trio.sleep(RETRY_AFTER)


async def _run_handler(
    handler: Handler, stream: Any, gate: ConnectionGate, key: str, slot: object
) -> None:
    try:
        await handler(stream)
    finally:
        try:
            await trio.aclose_forcefully(stream)
        finally:
            gate.leave(key)
            gate.slots.release_on_behalf_of(slot)


def _peer_host(stream: Any) -> str:
    """The remote IP of a SocketStream, or of the one under an SSLStream."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        sock = getattr(getattr(stream, "transport_stream", None), "socket", None)
    try:
        peer = sock.getpeername() if sock is not None else ""
    except OSError:  # already reset by the client
        return ""
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)
