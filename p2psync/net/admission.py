"""Admission of incoming connections before they are authenticated.

A connection counts as unauthenticated from ``accept`` until its peer is known to be a
trusted device (TLS handshake, certificate and Hello done). Those connections are capped
globally and per remote address, so a flood of idle or slow connections cannot use up
the daemon's file handles; a connection over either cap is closed at once. Each admitted
connection gets a deadline for reaching "trusted" (the manager enforces it).

The counting here is pure; :func:`serve_admitted` is the accept loop that applies it.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

log = logging.getLogger("p2psync.net")

DEFAULT_TOTAL = 256
DEFAULT_PER_ADDRESS = 32
DEFAULT_DEADLINE = 10.0
# File handles kept for everything but unauthenticated connections (index, folders,
# watchers, files being synced, trusted connections, the control API).
_RESERVED_FILES = 256
_MIN_TOTAL = 8

# accept() failing because a resource ran out: wait a little and try again.
_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_CAPACITY_RETRY = 0.1
# At most one log line per this many seconds about refused connections or accept errors.
_LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """Caps on unauthenticated connections and the time they get to authenticate."""

    total: int = DEFAULT_TOTAL
    per_address: int = DEFAULT_PER_ADDRESS
    deadline: float = DEFAULT_DEADLINE

    @classmethod
    def for_open_files(cls, soft_limit: int) -> AdmissionLimits:
        """Limits that leave room for the rest of the daemon under ``soft_limit`` handles
        (0: unknown or unlimited). At most a quarter of them goes to strangers.
        """
        if soft_limit <= 0:
            return cls()
        room = max(_MIN_TOTAL, min(soft_limit // 4, soft_limit - _RESERVED_FILES))
        total = min(DEFAULT_TOTAL, room)
        return cls(total=total, per_address=min(DEFAULT_PER_ADDRESS, total))


def address_key(host: str) -> str:
    """The unit the per-address cap counts: the IP, or the /64 of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Ticket:
    """One admitted connection's place under the caps; give it back with :meth:`release`."""

    def __init__(self, admission: Admission, key: str) -> None:
        self._admission = admission
        self.key = key
        self._held = True

    def release(self) -> None:
        """Idempotent: the first call frees the place."""
        if self._held:
            self._held = False
            self._admission._release(self.key)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    in_flight: int
    addresses: int
    refused: int


class Admission:
    """Counts unauthenticated connections, in total and per address key."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._total = 0
        self._by_key: dict[str, int] = {}
        self.refused = 0

    def try_admit(self, host: str) -> Ticket | None:
        """A ticket if a connection from ``host`` fits under both caps, else None."""
        key = address_key(host)
        held = self._by_key.get(key, 0)
        if self._total >= self.limits.total or held >= self.limits.per_address:
            self.refused += 1
            return None
        self._total += 1
        self._by_key[key] = held + 1
        return Ticket(self, key)

    def _release(self, key: str) -> None:
        self._total -= 1
        left = self._by_key[key] - 1
        if left:
            self._by_key[key] = left
        else:
            del self._by_key[key]

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(self._total, len(self._by_key), self.refused)


def peer_host(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "unknown"


async def serve_admitted(
    listener: trio.SocketListener,
    admission: Admission,
    handler: Callable[[trio.SocketStream, Ticket], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Accept forever; start ``handler`` for each connection under the caps.

    A connection over a cap is closed before any byte is read. Running out of file
    handles (or memory) in ``accept`` is waited out, with one log line per interval.
    The listener is closed when this returns or is cancelled.
    """
    async with listener:  # closed when this loop ends, so the port is free again
        next_refusal_log = -math.inf
        refused_logged = 0
        next_error_log = -math.inf
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _CAPACITY_ERRNOS:
                    raise
                now = trio.current_time()
                if now >= next_error_log:
                    log.warning("accepting a connection failed (%s); retrying", exc.strerror)
                    next_error_log = now + _LOG_INTERVAL
                await trio.sleep(_CAPACITY_RETRY)
                continue
            ticket = admission.try_admit(peer_host(stream))
            if ticket is None:
                stream.socket.close()
                now = trio.current_time()
                if now >= next_refusal_log:
                    limits = admission.limits
                    log.warning(
                        "refused %d incoming connection(s) over the cap on unauthenticated "
                        "connections (%d in all, %d per address)",
                        admission.refused - refused_logged,
                        limits.total,
                        limits.per_address,
                    )
                    refused_logged = admission.refused
                    next_refusal_log = now + _LOG_INTERVAL
                continue
            nursery.start_soon(handler, stream, ticket)
