"""Syncthing's global discovery protocol v3 (served at ``/v2/``), pure parts.

Announce: ``POST /v2/`` with ``{"addresses": [...]}``; the device is the one whose
certificate the TLS client presented (or, behind a trusted TLS-terminating proxy, the
certificate the proxy passes in a header). Lookup: ``GET /v2/?device=ID``, the same
answer as ``/v1/lookup``. Both use the same store as p2psync's signed ``/v1`` API, so a
Syncthing device and a p2psync node find each other through one server.

Unlike ``/v1``, an address the server cannot use is dropped rather than failing the
announcement (as stdiscosrv does): Syncthing announces QUIC and relay addresses too.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from p2psync.discovery.announcement import MALFORMED
from p2psync.errors import AnnouncementError

from .addresses import (
    _UNSPECIFIED,
    BAD_ADDRESS,
    MAX_ADDRESSES,
    _bracket,
    parse_relay_address,
    parse_tcp_address,
)
from .client_cert_tls import CLIENT_CERT_STATE

V3_PATH = "/v2/"
NO_CERTIFICATE = "no-certificate"
SCHEMES = ("tcp", "tcp4", "tcp6", "quic", "quic4", "quic6")
# Headers a TLS-terminating proxy puts the client certificate in (trusted with
# --trust-forwarded only): nginx ($ssl_client_escaped_cert), Caddy, Traefik.
NGINX_HEADER = "x-ssl-cert"
CADDY_HEADER = "x-tls-client-cert-der-base64"
TRAEFIK_HEADER = "x-forwarded-tls-client-cert"


def client_certificate(
    state: Mapping[str, Any], headers: Mapping[str, str], trust_forwarded: bool
) -> bytes | None:
    """The announcing device's certificate (DER): from our TLS layer (the connection's
    ``state``), else from a trusted proxy's header (names in lower case). None if there
    is none; AnnouncementError if a header is malformed."""
    der = state.get(CLIENT_CERT_STATE)
    if der:
        return bytes(der)
    if not trust_forwarded:
        return None
    try:
        if pem := headers.get(NGINX_HEADER):
            text = urllib.parse.unquote(pem)
            if "\n" not in text:  # some setups send the PEM with spaces for newlines
                begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
                inner = text.replace(begin, "").replace(end, "").strip().replace(" ", "\n")
                text = f"{begin}\n{inner}\n{end}\n"
            cert = x509.load_pem_x509_certificate(text.encode())
            return cert.public_bytes(Encoding.DER)
        for name in (CADDY_HEADER, TRAEFIK_HEADER):
            if value := headers.get(name):
                der = base64.b64decode(urllib.parse.unquote(value), validate=True)
                return x509.load_der_x509_certificate(der).public_bytes(Encoding.DER)
    except (ValueError, binascii.Error) as exc:
        raise AnnouncementError(MALFORMED, f"the proxy's client certificate header: {exc}") from exc
    return None


def announced_addresses(raw: bytes) -> list[str]:
    """The ``addresses`` of a v3 announcement body; AnnouncementError if malformed."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AnnouncementError(MALFORMED, "the body is not valid JSON") from exc
    addresses = body.get("addresses") if isinstance(body, dict) else None
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise AnnouncementError(MALFORMED, "'addresses' must be a list of strings")
    return addresses


def usable_addresses(addresses: list[str], source_host: str) -> list[str]:
    """The addresses worth storing, unspecified hosts replaced by ``source_host``; the
    others are dropped. AnnouncementError if none is left (stdiscosrv answers 400 too)."""
    result: list[str] = []
    for address in addresses[: 4 * MAX_ADDRESSES]:
        try:
            formatted = _one_address(address, source_host)
        except AnnouncementError:
            continue
        if formatted and formatted not in result:
            result.append(formatted)
        if len(result) == MAX_ADDRESSES:
            break
    if not result:
        raise AnnouncementError(BAD_ADDRESS, "the announcement has no usable address")
    return result


def _one_address(address: str, source_host: str) -> str | None:
    scheme, sep, rest = address.partition("://")
    scheme = scheme.lower()
    if scheme == "relay":
        return parse_relay_address(address)
    if not sep or scheme not in SCHEMES:
        return None
    host, port = parse_tcp_address(f"tcp://{rest}")
    if host in _UNSPECIFIED:
        if not source_host:
            return None
        host = source_host
    return f"{scheme}://{_bracket(host)}:{port}"
