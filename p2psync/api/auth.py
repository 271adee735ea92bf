"""API key storage and the request guards: a DNS-rebinding Host check and key auth.

The key lives in ``<home>/api.key`` (mode 0600), created at ``init``/``run``. Requests
carry it as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``; it is compared in
constant time. The guard runs before routing, so every route, known or not, is covered.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import ConfigError
from .http import Request, Response, json_error

API_KEY_FILE = "api.key"


def ensure_api_key(home: Path) -> str:
    """The node's API key, generating ``<home>/api.key`` (0600) first if it is missing."""
    path = home / API_KEY_FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_api_key(home)
    with os.fdopen(fd, "w") as f:
        key = secrets.token_urlsafe(32)
        f.write(key + "\n")
    return key


def read_api_key(home: Path) -> str:
    path = home / API_KEY_FILE
    try:
        key = path.read_text("utf-8").strip()
    except FileNotFoundError as exc:
        raise ConfigError(f"no API key at {path}; run `p2psync init` first") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API key {path}: {exc}") from exc
    if not key:
        raise ConfigError(f"the API key file {path} is empty")
    return key


def allowed_hosts(bound: str | None) -> set[str]:
    """Host header values accepted for a server bound at ``bound`` ("host:port")."""
    hosts = {"127.0.0.1", "[::1]", "localhost"}
    if bound:
        host, _, port = bound.rpartition(":")
        hosts |= {bound, f"{host}:{port}"} | {
            f"{h}:{port}" for h in ("127.0.0.1", "[::1]", "localhost")
        }
        hosts.add(host)
    return {h.lower() for h in hosts}


def exposure_warning(bound: str | None) -> str | None:
    """What to tell the user when the API bound at ``bound`` ("host:port") is reachable
    from beyond this machine: it speaks plain HTTP, so its key travels in clear text."""
    if not bound:
        return None
    host = bound.rpartition(":")[0].strip("[]").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a bound address is numeric; nothing to judge
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if ip.is_loopback or (mapped is not None and mapped.is_loopback):
        return None
    return (
        f"the control API listens on {bound}, beyond this machine, over plain HTTP: "
        "anyone on the way can read its API key and everything it answers. Bind it to "
        "127.0.0.1 (api in config.toml) and reach it through an SSH tunnel or a TLS proxy"
    )


def key_matches(presented: str | None, key: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), key.encode("utf-8"))


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        lname = name.lower()
        if lname == b"x-api-key":
            return value.decode("latin-1").strip()
        if lname == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


def _host_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"host":
            return value.decode("latin-1").strip().lower()
    return None


class Guard:
    """403 for a foreign Host header, then 401 for a missing or wrong API key.

    The app runs it before routing, so every route, known or not, is covered.
    ``get_hosts`` is read per request because the bound port is known only after binding.
    """

    def __init__(self, *, key: str, get_hosts: Callable[[], set[str]]) -> None:
        self.key = key
        self.get_hosts = get_hosts

    def __call__(self, request: Request) -> Response | None:
        host = _host_header(request.headers)
        if host is None or host not in self.get_hosts():
            return json_error(403, "forbidden Host header (only the bound address or localhost)")
        if not key_matches(presented_key(request.headers), self.key):
            return json_error(401, "missing or wrong API key (send X-API-Key; see <home>/api.key)")
        return None
