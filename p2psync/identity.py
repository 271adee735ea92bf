"""This device's key and certificate, and device IDs in Syncthing's format.

A device ID is the SHA-256 of the certificate's DER bytes, shown as base32 with a
Luhn mod-32 check character after each 13-character group, in 8 groups of 7.
The short ID (first 8 bytes, big-endian) keys version vectors.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import DeviceIDError, IdentityError

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TYPO_MAP = str.maketrans({"0": "O", "1": "I", "8": "B"})
_VALUE = {ch: i for i, ch in enumerate(_ALPHABET)}  # lookups parse IDs on every request
_BASE32 = frozenset(_ALPHABET)
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
# Syncthing accepts a peer's certificate only if its name is "syncthing" (unless the user
# sets the device's certName), so new identities carry that name; p2psync itself never
# checks it, and identities made before this still work between p2psync nodes.
COMMON_NAME = "syncthing"


# Luhn mod 32: a character at an even index (from 0) adds its value, one at an odd index
# adds the digit sum (base 32) of twice its value. Table-driven: lookups parse device IDs
# on every request (the discovery server), and this is most of that cost.
_DOUBLED = {ch: (2 * v) // 32 + (2 * v) % 32 for ch, v in _VALUE.items()}
# RFC 4648 base32 spelled in the digits int(..., 32) reads (0-9, A-V): decoding a device
# ID becomes one C-level translate and int() instead of base64's pure-Python loop.
_TO_INT32 = str.maketrans(_ALPHABET, "0123456789ABCDEFGHIJKLMNOPQRSTUV")


def luhn32(group: str) -> str:
    """Syncthing's Luhn mod-32 check character (weighting starts at the leftmost char)."""
    try:
        total = sum(map(_VALUE.__getitem__, group[0::2]))
        total += sum(map(_DOUBLED.__getitem__, group[1::2]))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not a base32 character") from None
    return _ALPHABET[(32 - total % 32) % 32]


def _b32_device_bytes(text: str) -> bytes:
    """The 32 bytes of 52 base32 characters (260 bits; the last 4 are padding)."""
    return (int(text.translate(_TO_INT32), 32) >> 4).to_bytes(32, "big")


@functools.lru_cache(maxsize=1024)
def _display_form(raw: bytes) -> str:
    """The dashed, check-charactered text of a device ID; cached because the peers'
    IDs are formatted for every request they make (config lookups are by text)."""
    b32 = base64.b32encode(raw).decode("ascii").rstrip("=")
    chunks = [b32[i * 13 : i * 13 + 13] for i in range(4)]
    with_checks = "".join(c + luhn32(c) for c in chunks)
    return "-".join(with_checks[i * 7 : i * 7 + 7] for i in range(8))


@dataclass(frozen=True, slots=True)
class DeviceID:
    """A device's identity: the SHA-256 of its certificate."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise DeviceIDError(f"a device ID is 32 bytes, got {len(self.raw)}")

    @classmethod
    def from_cert_der(cls, der: bytes) -> DeviceID:
        return cls(hashlib.sha256(der).digest())

    @classmethod
    def parse(cls, text: str) -> DeviceID:
        """Parse a device ID leniently (case, dashes, spaces, 0/1/8 typos) like Syncthing."""
        s = text.strip().upper().translate(_TYPO_MAP)
        s = s.replace("-", "").replace(" ", "").rstrip("=")
        if len(s) == 56:
            groups = [s[i * 14 : i * 14 + 14] for i in range(4)]
            data = ""
            for n, g in enumerate(groups):
                body, check = g[:13], g[13]
                if not _BASE32.issuperset(g):
                    raise DeviceIDError(f"device ID {text!r} contains characters outside base32")
                if luhn32(body) != check:
                    # each check covers two of the 8 groups the user sees and ends the second
                    first, last = 2 * n + 1, 2 * n + 2
                    raise DeviceIDError(
                        f"device ID {text!r} has a wrong check character at the end of group "
                        f"{last}: a typo in group {first} or {last}?"
                    )
                data += body
            s = data
        elif len(s) != 52:
            raise DeviceIDError(
                f"device ID {text!r} has {len(s)} characters; expected 56 (or 52 without checks)"
            )
        if not _BASE32.issuperset(s):
            raise DeviceIDError(f"device ID {text!r} contains characters outside base32")
        return cls(_b32_device_bytes(s))

    def __str__(self) -> str:
        return _display_form(self.raw)

    def __repr__(self) -> str:
        return f"DeviceID({self.short_str()})"

    @property
    def short_id(self) -> int:
        """First 8 bytes as a big-endian uint64: the key in version vectors."""
        return int.from_bytes(self.raw[:8], "big")

    def short_str(self) -> str:
        """The first group of the formatted ID, for humans and conflict-copy names."""
        return str(self)[:7]


@dataclass(frozen=True)
class Identity:
    """This device's private key and certificate, loaded from the node home."""

    cert_pem: bytes
    key_pem: bytes
    device_id: DeviceID

    @property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(
            serialization.Encoding.DER
        )

    @property
    def certificate_name(self) -> str:
        """The certificate's common name ("syncthing" for identities made since 0.1)."""
        names = x509.load_pem_x509_certificate(self.cert_pem).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
        return str(names[0].value) if names else ""

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def generate_identity(common_name: str = COMMON_NAME) -> Identity:
    """A fresh ECDSA P-384 key and a self-signed certificate (20 years, like Syncthing)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "p2psync"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(63) or 1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=20 * 365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Identity(
        cert_pem, key_pem, DeviceID.from_cert_der(cert.public_bytes(serialization.Encoding.DER))
    )


def save_identity(identity: Identity, home: Path) -> None:
    """Write cert.pem and key.pem (0600) into ``home`` atomically.

    A home created here is 0700, like Syncthing's: it holds the key, the API key and
    the config, none of which other local users should list or read. An existing home
    keeps its mode (its owner chose it).
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(home / KEY_FILE, identity.key_pem)
    _write_private(home / CERT_FILE, identity.cert_pem, mode=0o644)


def load_identity(home: Path) -> Identity:
    cert_path, key_path = home / CERT_FILE, home / KEY_FILE
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except FileNotFoundError as exc:
        raise IdentityError(
            f"no identity in {home} ({exc.filename} missing); run `p2psync init` first"
        ) from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise IdentityError(f"cannot read the key or certificate in {home}: {exc}") from exc
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise IdentityError(f"{cert_path} and {key_path} do not belong together")
    der = cert.public_bytes(serialization.Encoding.DER)
    return Identity(cert_pem, key_pem, DeviceID.from_cert_der(der))


def load_or_create_identity(home: Path) -> tuple[Identity, bool]:
    """Load the identity in ``home``, creating one if none exists. Returns (identity, created)."""
    if (home / CERT_FILE).exists() or (home / KEY_FILE).exists():
        return load_identity(home), False
    identity = generate_identity()
    save_identity(identity, home)
    return identity, True


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
