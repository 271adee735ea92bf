"""Which announced addresses the server accepts, and filling in unspecified hosts. Pure."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from p2psync.errors import AnnouncementError

MAX_ADDRESSES = 16
MAX_ADDRESS_CHARS = 256
BAD_ADDRESS = "bad-address"
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_UNSPECIFIED = {"", "0.0.0.0", "::"}


def normalize_addresses(addresses: list[str], source_host: str) -> list[str]:
    """Validate every address and put ``source_host`` where the host is unspecified.

    Accepted: ``tcp://HOST:PORT`` with HOST an IPv4 literal, a bracketed IPv6 literal or a
    DNS name, PORT 1..65535, nothing else in the URL. ``tcp://0.0.0.0:P``, ``tcp://[::]:P``
    and ``tcp://:P`` mean "the address this announcement came from". Any bad address
    rejects the whole announcement (AnnouncementError, reason ``bad-address``); duplicates
    are dropped, order kept.
    """
    if not addresses:
        raise AnnouncementError(BAD_ADDRESS, "the announcement lists no addresses")
    if len(addresses) > MAX_ADDRESSES:
        raise AnnouncementError(
            BAD_ADDRESS, f"{len(addresses)} addresses announced; at most {MAX_ADDRESSES} allowed"
        )
    result: list[str] = []
    for address in addresses:
        if address[:8].lower() == "relay://":
            relay = parse_relay_address(address)
            if relay not in result:
                result.append(relay)
            continue
        host, port = parse_tcp_address(address)
        if host in _UNSPECIFIED:
            if not source_host:
                raise AnnouncementError(
                    BAD_ADDRESS, f"address {address!r} has no host and the source is unknown"
                )
            host = source_host
        formatted = f"tcp://{_bracket(host)}:{port}"
        if formatted not in result:
            result.append(formatted)
    return result


def parse_relay_address(address: str) -> str:
    """A ``relay://HOST:PORT/?id=RELAY-ID`` address in its canonical form (the relay's
    descriptive query parameters dropped); its host must be a concrete one."""
    from p2psync.errors import ConfigError
    from p2psync.protocol.relay import parse_relay_url

    shown = address[:60] + ("..." if len(address) > 60 else "")
    if len(address) > MAX_ADDRESS_CHARS or not address.isprintable() or " " in address:
        raise AnnouncementError(BAD_ADDRESS, f"address {shown!r} is too long or not printable")
    try:
        relay = parse_relay_url(address)
    except ConfigError as exc:
        raise AnnouncementError(BAD_ADDRESS, f"address {shown!r}: {exc}") from exc
    if relay.host.strip("[]") in _UNSPECIFIED:
        raise AnnouncementError(BAD_ADDRESS, f"relay address {shown!r} needs the relay's host")
    return str(relay)


def parse_tcp_address(address: str) -> tuple[str, int]:
    """(host, port) of a ``tcp://`` address; host is "" for ``tcp://:PORT``."""
    shown = address[:60] + ("..." if len(address) > 60 else "")
    if len(address) > MAX_ADDRESS_CHARS:
        raise AnnouncementError(
            BAD_ADDRESS, f"address {shown!r} is longer than {MAX_ADDRESS_CHARS} characters"
        )
    if not address.isprintable() or " " in address:
        raise AnnouncementError(BAD_ADDRESS, f"address {shown!r} contains control characters")
    try:
        parts = urllib.parse.urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise AnnouncementError(
            BAD_ADDRESS, f"address {shown!r} is not a valid URL: {exc}"
        ) from exc
    if parts.scheme != "tcp":
        raise AnnouncementError(
            BAD_ADDRESS, f"address {shown!r}: only tcp://host:port addresses are accepted"
        )
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise AnnouncementError(BAD_ADDRESS, f"address {shown!r} must be just tcp://host:port")
    if port is None or not 1 <= port <= 65535:
        raise AnnouncementError(BAD_ADDRESS, f"address {shown!r} needs a port from 1 to 65535")
    netloc_host = parts.netloc.rsplit(":", 1)[0]
    host = parts.hostname or ""
    if netloc_host.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise AnnouncementError(
                BAD_ADDRESS, f"address {shown!r} has an invalid IPv6 literal"
            ) from exc
        return str(ipaddress.IPv6Address(host)), port
    if host == "":
        return "", port
    try:
        return str(ipaddress.IPv4Address(host)), port
    except ValueError:
        pass
    if not _is_hostname(host):
        raise AnnouncementError(BAD_ADDRESS, f"address {shown!r} has an invalid host name")
    return host, port


def _is_hostname(host: str) -> bool:
    if len(host) > 253 or host.replace(".", "").isdigit():
        return False
    return all(_HOSTNAME_LABEL.match(label) for label in host.rstrip(".").split("."))


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
