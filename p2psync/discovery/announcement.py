"""Signed global-discovery announcements: build one (device side), check one (server side).

Pure: no I/O, no clock — callers pass ``now``/``timestamp`` in Unix seconds.

Body of ``POST /v1/announce`` (JSON object)::

    {"device": "<device ID>",           # optional; must match the certificate if present
     "certificate": "<PEM or base64 DER>",
     "addresses": ["tcp://host:port", ...],
     "timestamp": <int Unix seconds>,
     "signature": "<base64 DER ECDSA signature>"}

The signature is ECDSA with SHA-384 by the device key over the canonical bytes::

    json.dumps(["p2psync-announce-v1", DEVICE_ID, SERVER_URL, TIMESTAMP, ADDRESSES],
               ensure_ascii=True, separators=(",", ":")).encode("ascii")

where DEVICE_ID is the formatted ID (``XXXXXXX-...``) derived from the certificate,
SERVER_URL is :func:`canonical_server_url` of the server's public URL (binds the
announcement to one server), TIMESTAMP the integer and ADDRESSES the list exactly as sent.
JSON with fixed separators and ASCII escapes is unambiguous for strings, ints and lists.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import AnnouncementError, DeviceIDError
from ..identity import DeviceID, Identity

DOMAIN = "p2psync-announce-v1"
DEFAULT_WINDOW = 120  # seconds of clock skew tolerated either way
MAX_CERTIFICATE_CHARS = 8192
MAX_SIGNATURE_CHARS = 512

# Reasons carried by AnnouncementError.reason (also the metrics labels).
MALFORMED = "malformed"
BAD_CERTIFICATE = "bad-certificate"
BAD_SIGNATURE = "bad-signature"
STALE = "stale-timestamp"


def canonical_server_url(url: str) -> str:
    """Scheme and host lower-cased, path without trailing ``/``, query and fragment dropped."""
    parts = urllib.parse.urlsplit(url.strip())
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", "")
    )


def signing_bytes(
    device_id: DeviceID, addresses: list[str], timestamp: int, server_url: str
) -> bytes:
    """The exact bytes the device signs (see the module docstring)."""
    payload = [DOMAIN, str(device_id), canonical_server_url(server_url), timestamp, addresses]
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def sign_announcement(
    identity: Identity, addresses: list[str], timestamp: int, server_url: str
) -> dict[str, Any]:
    """The JSON body announcing ``addresses`` for ``identity`` to the server at ``server_url``."""
    addresses = list(addresses)
    message = signing_bytes(identity.device_id, addresses, int(timestamp), server_url)
    signature = identity.private_key().sign(message, ec.ECDSA(hashes.SHA384()))
    return {
        "device": str(identity.device_id),
        "certificate": identity.cert_pem.decode("ascii"),
        "addresses": addresses,
        "timestamp": int(timestamp),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def verify_announcement(
    body: Any, server_url: str, now: float, window: float = DEFAULT_WINDOW
) -> tuple[DeviceID, list[str]]:
    """Check ``body`` and return (device ID, addresses as sent).

    Raises AnnouncementError with ``reason`` malformed / bad-certificate / bad-signature /
    stale-timestamp. Address syntax and replay (timestamp not newer than the last accepted
    one) are the server's checks, not this function's.
    """
    if not isinstance(body, dict):
        raise AnnouncementError(MALFORMED, "the announcement must be a JSON object")
    certificate = _field(body, "certificate", str)
    addresses = _field(body, "addresses", list)
    timestamp = _field(body, "timestamp", int)
    signature_text = _field(body, "signature", str)
    if any(not isinstance(a, str) for a in addresses):
        raise AnnouncementError(MALFORMED, "'addresses' must be a list of strings")
    if len(certificate) > MAX_CERTIFICATE_CHARS or len(signature_text) > MAX_SIGNATURE_CHARS:
        raise AnnouncementError(MALFORMED, "'certificate' or 'signature' is too long")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AnnouncementError(MALFORMED, "'signature' is not valid base64") from exc

    if abs(now - timestamp) > window:
        raise AnnouncementError(
            STALE,
            f"timestamp {timestamp} is {timestamp - now:+.0f} s from the server's clock "
            f"(allowed ±{window:.0f} s); check the device's clock",
        )

    cert = _load_certificate(certificate)
    device_id = DeviceID.from_cert_der(cert.public_bytes(serialization.Encoding.DER))
    claimed = body.get("device")
    if claimed is not None:
        if not isinstance(claimed, str):
            raise AnnouncementError(MALFORMED, "'device' must be a string")
        try:
            claimed_id = DeviceID.parse(claimed)
        except DeviceIDError as exc:
            raise AnnouncementError(MALFORMED, f"'device' is not a device ID: {exc}") from exc
        if claimed_id != device_id:
            raise AnnouncementError(
                BAD_CERTIFICATE,
                f"the certificate belongs to {device_id}, not to the claimed {claimed_id}",
            )
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise AnnouncementError(BAD_CERTIFICATE, "the certificate's key is not an ECDSA key")
    try:
        public_key.verify(
            signature,
            signing_bytes(device_id, addresses, timestamp, server_url),
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature as exc:
        raise AnnouncementError(
            BAD_SIGNATURE,
            "the signature does not match the certificate, addresses, timestamp and server URL "
            f"{canonical_server_url(server_url)!r}",
        ) from exc
    return device_id, addresses


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    # bool is an int subclass; a timestamp of `true` is malformed.
    if value is None or not isinstance(value, kind) or isinstance(value, bool):
        raise AnnouncementError(MALFORMED, f"'{name}' is missing or not a {kind.__name__}")
    return value


def _load_certificate(text: str) -> x509.Certificate:
    try:
        if text.lstrip().startswith("-----BEGIN"):
            return x509.load_pem_x509_certificate(text.encode("ascii"))
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise AnnouncementError(
            BAD_CERTIFICATE, "'certificate' is not a PEM or base64-DER X.509 certificate"
        ) from exc
