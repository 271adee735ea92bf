"""The link listener's certificate: ``<home>/links-tls/{cert,key}.pem``.

Made self-signed on first use (ECDSA P-256, ten years, names: localhost, the loopback
addresses and the listen host). The user may replace both files with a certificate from
their own CA or ACME client; it is read again whenever the listener starts.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import ConfigError

TLS_DIR = "links-tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_DAYS = 3650


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:..."
    spki_sha256: str  # base64 SHA-256 of the public key (for pinning, e.g. Chromium's)
    pem: bytes


def tls_dir(home: Path) -> Path:
    return Path(home) / TLS_DIR


def ensure_certificate(home: Path, host: str) -> Certificate:
    """The certificate in ``home`` (made self-signed for ``host`` if absent). Blocking."""
    folder = tls_dir(home)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if not cert_path.exists() and not key_path.exists():
        folder.mkdir(mode=0o700, exist_ok=True)
        _make_self_signed(cert_path, key_path, host)
    return load_certificate(cert_path, key_path)


def load_certificate(cert_path: Path, key_path: Path) -> Certificate:
    try:
        pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"link certificate {cert_path} unusable: {exc}") from exc
    der = cert.public_bytes(serialization.Encoding.DER)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).hexdigest().upper()
    return Certificate(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
        pem=pem,
    )


def server_context(cert: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert.cert_path, cert.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"link certificate or key unusable: {exc}") from exc
    context.set_alpn_protocols(["http/1.1"])
    return context


def _make_self_signed(cert_path: Path, key_path: Path, host: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    ips = {"127.0.0.1", "::1"}
    if host and host not in ("0.0.0.0", "::"):
        try:
            ips.add(str(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sorted(ips)]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2psync share links")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
