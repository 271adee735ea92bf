"""Device and listen addresses: ``tcp://host:port``, ``tcp4://``, ``tcp6://``, ``dynamic``.

Follows Syncthing: a missing port means the default 22000; ``dynamic`` means "find
this device through discovery"; IPv6 literals go in brackets. A configured device
address is a :class:`DeviceAddress` and a listen address a :class:`ListenAddress`, each
parsed once where the config is loaded or edited.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError
from .protocol.relay import RelayURL, parse_relay_url
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


# ---- configured addresses ----------------------------------------------------------------

_CONFIG_TCP = re.compile(r"tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})")


def parse_config_tcp(text: str) -> Endpoint:
    """A ``tcp://HOST:PORT`` address as config.toml takes it (listen and device
    addresses): the port is required, the scheme is lower-case ``tcp``. ConfigError
    otherwise (the caller prefixes the key)."""
    m = _CONFIG_TCP.fullmatch(text)
    if m and int(m.group(2)) <= 65535:
        try:
            return parse_endpoint(text)
        except ConfigError:
            pass  # e.g. brackets around something that is no IPv6 address
    raise ConfigError(f"{text!r} is not an address like tcp://HOST:PORT")


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """A device's configured address, parsed once: the text as written (``str()`` gives
    it back, so config.toml is saved byte for byte as it was read) and what it means:
    ``dynamic`` (``target`` None), a tcp :class:`Endpoint` or a relay :class:`RelayURL`.
    """

    text: str
    target: Endpoint | RelayURL | None

    @classmethod
    def parse(cls, text: str) -> DeviceAddress:
        """``dynamic``, ``tcp://HOST:PORT`` or ``relay://HOST:PORT/?id=...``; ConfigError
        says what is wrong (the caller prefixes where the text came from)."""
        if _is_dynamic_exactly(text):
            return cls(text, None)
        if text.lower().startswith("relay://"):
            return cls(text, parse_relay_url(text))
        return cls(text, parse_config_tcp(text))

    def __str__(self) -> str:
        return self.text

    @property
    def is_dynamic(self) -> bool:
        return self.target is None

    @property
    def endpoint(self) -> Endpoint | None:
        """The tcp address to dial, or None (dynamic, relay)."""
        return self.target if isinstance(self.target, Endpoint) else None

    @property
    def relay(self) -> RelayURL | None:
        """The relay to dial through, or None (dynamic, tcp)."""
        return self.target if isinstance(self.target, RelayURL) else None


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A configured listen address, parsed once: the text as written (``str()`` gives
    it back, so config.toml is saved byte for byte) and the tcp :class:`Endpoint` to
    bind. Only ``tcp://HOST:PORT``: no ``dynamic``, no relay URL."""

    text: str
    endpoint: Endpoint

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """ConfigError says what is wrong (the caller prefixes where the text came from)."""
        return cls(text, parse_config_tcp(text))

    def __str__(self) -> str:
        return self.text


DYNAMIC_ADDRESS = DeviceAddress.parse("dynamic")
"""The default address of a device: find it through discovery."""


def explicit_addresses(addresses: Iterable[DeviceAddress]) -> tuple[DeviceAddress, ...]:
    """The configured addresses other than ``dynamic``, in order."""
    return tuple(a for a in addresses if not a.is_dynamic)


def uses_discovery(addresses: Iterable[DeviceAddress]) -> bool:
    """Does a device with these addresses want to be found through discovery?"""
    return any(a.is_dynamic for a in addresses)
