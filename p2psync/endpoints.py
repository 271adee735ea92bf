"""Device and listen addresses: ``tcp://host:port``, ``tcp4://``, ``tcp6://``, ``dynamic``.

Follows Syncthing: a missing port means the default 22000; ``dynamic`` means "find
this device through discovery"; IPv6 literals go in brackets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError
from .values import is_dynamic as _is_dynamic_exactly

DEFAULT_PORT = 22000
SCHEMES = ("tcp", "tcp4", "tcp6")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed ``tcp://`` address. ``host`` is a name or an IP literal without brackets."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an IP address, or None for a host name."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def is_unspecified(self) -> bool:
        """True for 0.0.0.0, :: or an empty host (listen on every interface)."""
        ip = self.ip
        return self.host == "" or (ip is not None and ip.is_unspecified)

    @property
    def is_loopback(self) -> bool:
        ip = self.ip
        return ip is not None and ip.is_loopback


def is_dynamic(text: str) -> bool:
    """``dynamic`` in any case, with spaces around it (text typed by a user; the
    config stores it exactly as :data:`values.DYNAMIC`)."""
    return _is_dynamic_exactly(text.strip().lower())


def parse_endpoint(text: str, *, default_port: int = DEFAULT_PORT) -> Endpoint:
    """Parse ``tcp://127.0.0.1:22001``, ``tcp://[::1]:22001``, ``tcp://host`` and so on.

    Raises ConfigError for ``dynamic`` (check :func:`is_dynamic` first), an unknown
    scheme, a bad port, or an IP literal of the wrong family for tcp4/tcp6.
    """
    raw = text.strip()
    if is_dynamic(raw):
        raise ConfigError("'dynamic' is not a concrete address; resolve it through discovery")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"address {text!r} is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not raw.lower().startswith(f"{scheme}://"):
        raise ConfigError(
            f"address {text!r} must look like tcp://host:port (schemes: {', '.join(SCHEMES)})"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"address {text!r} has parts a tcp address cannot have")
    host = parts.hostname or ""
    if "[" in parts.netloc and ":" not in host:
        raise ConfigError(f"address {text!r}: brackets are only for IPv6 literals")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError as exc:
            raise ConfigError(f"address {text!r} has an invalid IPv6 literal") from exc
    endpoint = Endpoint(scheme, host, default_port if port is None else port)
    ip = endpoint.ip
    if ip is not None and (
        (scheme == "tcp4" and ip.version != 4) or (scheme == "tcp6" and ip.version != 6)
    ):
        raise ConfigError(f"address {text!r}: {scheme} does not take an IPv{ip.version} address")
    return endpoint


def parse_addresses(texts: list[str] | tuple[str, ...]) -> tuple[bool, list[Endpoint]]:
    """Parse a device's configured addresses: (uses discovery?, explicit endpoints)."""
    dynamic = False
    endpoints: list[Endpoint] = []
    for text in texts:
        if is_dynamic(text):
            dynamic = True
        else:
            endpoints.append(parse_endpoint(text))
    return dynamic, endpoints
