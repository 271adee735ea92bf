"""The address cache the dialer reads: addresses per device, from several sources, with TTLs.

Pure and clock-free: callers pass ``now`` (seconds, any monotonic base). Entries expire,
so a spoofed or stale record is never trusted forever; a failed dial can evict one early.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Entry:
    expires: float
    source: str


@dataclass
class AddressCache:
    """Addresses (``tcp://host:port`` URLs) per device ID (raw bytes), each with an expiry."""

    max_per_device: int = 32
    _by_device: dict[bytes, dict[str, _Entry]] = field(default_factory=dict)

    def add(
        self, device: bytes, addresses: list[str], *, source: str, ttl: float, now: float
    ) -> None:
        """Remember ``addresses`` for ``device`` until ``now + ttl``."""
        entries = self._by_device.setdefault(device, {})
        for address in addresses:
            entries[address] = _Entry(expires=now + ttl, source=source)
        if len(entries) > self.max_per_device:
            for address, _ in sorted(entries.items(), key=lambda kv: kv[1].expires)[
                : len(entries) - self.max_per_device
            ]:
                del entries[address]

    def replace(
        self, device: bytes, addresses: list[str], *, source: str, ttl: float, now: float
    ) -> None:
        """Replace everything ``source`` said about ``device`` with ``addresses``."""
        entries = self._by_device.get(device, {})
        for address in [a for a, e in entries.items() if e.source == source]:
            del entries[address]
        self.add(device, addresses, source=source, ttl=ttl, now=now)

    def forget(self, device: bytes, address: str) -> None:
        """Drop one address (e.g. after a failed handshake with the wrong certificate)."""
        self._by_device.get(device, {}).pop(address, None)

    def addresses(self, device: bytes, now: float) -> list[str]:
        """Live addresses for ``device``, most recently refreshed first."""
        entries = self._by_device.get(device)
        if not entries:
            return []
        for address in [a for a, e in entries.items() if e.expires <= now]:
            del entries[address]
        return [a for a, _ in sorted(entries.items(), key=lambda kv: -kv[1].expires)]

    def sources(self, device: bytes, now: float) -> dict[str, str]:
        """address -> source, for status output."""
        self.addresses(device, now)
        return {a: e.source for a, e in self._by_device.get(device, {}).items()}
