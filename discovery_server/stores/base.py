"""The store interface every backend implements, and the record it returns."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from p2psync.errors import P2PSyncError
from p2psync.identity import DeviceID


class StoreUnavailableError(P2PSyncError):
    """The discovery server's store (e.g. Redis) cannot be reached right now."""


MAX_ADDRESSES_PER_DEVICE = 32  # merged announcements keep the newest this many


@dataclass(frozen=True, slots=True)
class Record:
    """A device's live addresses (newest announcement first) and when it last announced,
    with the lookup answer already encoded: ``answer`` is the JSON body
    ``{"addresses": [...], "seen": "RFC 3339"}`` that a lookup sends as is.

    Build one with ``Record.of``; the memory store keeps the encoded form and makes a
    Record from it per lookup without decoding it (``addresses`` decodes on demand).
    """

    answer: bytes
    seen: float  # Unix seconds of the last accepted announcement
    valid_until: float = 0.0  # when the first of these addresses lapses (0: unknown)

    @classmethod
    def of(cls, addresses: Sequence[str], seen: float, valid_until: float = 0.0) -> Record:
        return cls(encode_answer(addresses, seen), seen, valid_until)

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(json.loads(self.answer)["addresses"])


def encode_answer(addresses: Sequence[str], seen: float) -> bytes:
    """The 200 lookup body for these addresses, compact JSON."""
    body = {"addresses": list(addresses), "seen": rfc3339(seen)}
    return json.dumps(body, separators=(",", ":")).encode()


def rfc3339(unix: float) -> str:
    return _rfc3339_second(int(unix))


@functools.lru_cache(maxsize=4096)
def _rfc3339_second(unix: int) -> str:
    moment = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


class Store(Protocol):
    """Where announcements live. All times are Unix seconds passed in by the caller.

    ``put`` merges: the announced addresses get a fresh expiry ``now + ttl``; addresses
    from earlier announcements keep theirs until they lapse (so one device announcing
    over IPv4 and IPv6 keeps both), up to MAX_ADDRESSES_PER_DEVICE, newest first.
    """

    async def put(self, device: DeviceID, addresses: list[str], now: float, ttl: float) -> None: ...

    async def get(self, device: DeviceID, now: float) -> Record | None:
        """The live record, or None if unknown or every address has expired."""
        ...

    async def size(self, now: float) -> int:
        """How many devices have a record (may include ones expired since the last sweep)."""
        ...

    async def ping(self) -> None:
        """Return if the store is usable; raise StoreUnavailableError if not."""
        ...

    async def claim_timestamp(
        self, device: DeviceID, timestamp: int, now: float, keep: float
    ) -> bool:
        """Atomically record ``timestamp`` as the device's last accepted one.

        Returns False (and changes nothing) if it is not newer than the last accepted
        timestamp; the record is kept for ``keep`` seconds (longer than the freshness
        window, so a replay is either stale or caught here).
        """
        ...

    async def expire(self, now: float) -> int:
        """Drop what has expired; returns how many devices were removed."""
        ...

    async def aclose(self) -> None: ...
