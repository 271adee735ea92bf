"""An optional sign-in password for the web interface, kept as a scrypt hash.

``<home>/web.password`` (mode 0600) holds ``scrypt$N$r$p$salt$hash`` (base64). It is read
at each sign-in, so setting or clearing it with ``p2psync web-password`` takes effect at
once, daemon running or not. The API key keeps working either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..errors import ConfigError, UsageError

PASSWORD_FILE = "web.password"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
MIN_LENGTH = 8


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise UsageError(f"the password needs at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.strip().split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8", "surrogateescape"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 << 20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def set_password(home: Path, password: str | None) -> None:
    """Store the hash of ``password`` (0600, atomically), or remove it (None)."""
    path = home / PASSWORD_FILE
    if password is None:
        path.unlink(missing_ok=True)
        return
    line = hash_password(password) + "\n"
    tmp = path.with_name(f".{PASSWORD_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line)
    os.replace(tmp, path)


def check_password(home: Path, password: str) -> bool:
    """Blocking (scrypt, ~50 ms): True if a password is set and ``password`` is it."""
    try:
        stored = (home / PASSWORD_FILE).read_text("utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {home / PASSWORD_FILE}: {exc}") from exc
    return bool(password) and verify_password(password, stored)
