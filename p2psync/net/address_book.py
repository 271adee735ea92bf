"""What the connection manager needs from discovery: the addresses found for a device.

Discovery (``discovery.cache.AddressCache``) fills it; the dialer only reads it and
forgets an address that led to the wrong device. Typed here so that ``net`` does not
import ``discovery``.
"""

from __future__ import annotations

from typing import Protocol


class AddressBook(Protocol):
    def addresses(self, device: bytes, now: float) -> list[str]:
        """Live addresses for ``device`` (raw ID), most recently refreshed first."""
        ...

    def forget(self, device: bytes, address: str) -> None:
        """Drop one address (it led to another device, or to none)."""
        ...
