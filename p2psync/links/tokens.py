"""Link tokens, password hashes and the wrong-password rate limiter (pure, ``now`` passed in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

TOKEN_BYTES = 18  # 144 bits: the URL is the secret of a link without a password
ID_BYTES = 4

# scrypt cost: N=2**15, r=8, p=1 uses 32 MiB and ~0.1 s per check on a small machine
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 << 20
SALT_BYTES = 16
HASH_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id() -> str:
    return secrets.token_hex(ID_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 parts). Slow on purpose: run it in a thread."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=HASH_BYTES,
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored`` (constant-time compare)."""
    try:
        kind, n, r, p, salt, expected = stored.split("$")
        if kind != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(base64.b64decode(expected)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, base64.b64decode(expected))


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class FailureLimiter:
    """Token buckets of wrong-password attempts, one per key (a link, an address).

    Each key may fail ``burst`` times at once, then once per ``refill`` seconds. A check
    is allowed only if every key it names has a token left. The caller takes the tokens
    (``failed``) before the slow check and gives them back (``refund``) if it succeeds, so
    concurrent attempts cannot all pass the limit while the first is being checked. At
    most ``max_keys`` keys are kept (bounded memory), the fullest dropped first.
    """

    burst: float
    refill: float
    max_keys: int = 10_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst
        return min(self.burst, bucket.tokens + (now - bucket.stamp) / self.refill)

    def retry_after(self, keys: list[str], now: float) -> float:
        """0 if an attempt is allowed now, else the seconds until it is."""
        wait = 0.0
        for key in keys:
            level = self._level(key, now)
            if level < 1.0:
                wait = max(wait, (1.0 - level) * self.refill)
        return wait

    def refund(self, keys: list[str], now: float) -> None:
        """Give back the token ``failed`` took for an attempt that turned out right."""
        for key in keys:
            self._buckets[key] = _Bucket(min(self.burst, self._level(key, now) + 1.0), now)

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            self._buckets[key] = _Bucket(max(0.0, self._level(key, now) - 1.0), now)
        if len(self._buckets) > self.max_keys:
            fullest = sorted(self._buckets, key=lambda k: -self._level(k, now))
            for key in fullest[: len(self._buckets) - self.max_keys]:
                del self._buckets[key]
