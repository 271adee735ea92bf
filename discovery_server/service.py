"""The discovery server's HTTP API: routes and handlers over ``http1``'s requests.

    POST /v1/announce        signed announcement -> 204 + Reannounce-After
    GET  /v1/lookup?device=  200 {"addresses", "seen"} | 404 + Retry-After
    POST /v2/                Syncthing's discovery v3 announce (TLS client certificate)
    GET  /v2/?device=        Syncthing's discovery v3 lookup (same answer as /v1/lookup)
    GET  /healthz            200 when the store answers
    GET  /metrics            Prometheus text

Every 4xx/5xx body is ``{"error": "..."}``. Rejections are counted by reason. GET routes
answer HEAD too (without the body). Bodies arrive read and bounded (``http1.Limits``).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from p2psync.api.accept import ConnectionGate
from p2psync.discovery import announcement
from p2psync.errors import AnnouncementError, DeviceIDError
from p2psync.identity import DeviceID

from .addresses import BAD_ADDRESS, normalize_addresses
from .http1 import HttpRequest, HttpResponse
from .metrics import Metrics
from .ratelimit import RateLimiter
from .stores import Store, StoreUnavailableError
from .syncthing_api import (
    NO_CERTIFICATE,
    V3_PATH,
    announced_addresses,
    client_certificate,
    usable_addresses,
)

log = logging.getLogger(__name__)

REPLAYED = "replayed"
# Device IDs parsed from a lookup's text and found, kept by that text (at most this many,
# the oldest dropped first; about 250 bytes each): a device looked up again skips the
# parse (four Luhn checks and a base32 decode, 10-20 us). Only hits are kept, so lookups
# of random IDs cannot churn it.
PARSED_CACHE_SIZE = 16_384
_STATUS_BY_REASON = {
    announcement.MALFORMED: 400,
    BAD_ADDRESS: 400,
    announcement.STALE: 400,
    announcement.BAD_CERTIFICATE: 403,
    announcement.BAD_SIGNATURE: 403,
    NO_CERTIFICATE: 403,
    REPLAYED: 409,
}


@dataclass(frozen=True)
class ServerSettings:
    """Policy knobs; times in seconds. ``url`` None = derive from the first bound address.

    A request head must arrive within ``header_timeout``, a body within ``body_timeout``
    (in total, 408 beyond). At most ``max_connections`` are open (lowered to stay under
    the file-handle limit) and ``max_per_address`` from one IP or IPv6 /64 (0 = no cap).
    """

    url: str | None = None
    ttl: float = 3600
    reannounce_after: int = 1800
    retry_after: int = 60
    window: float = announcement.DEFAULT_WINDOW
    rate: float = 2.0
    burst: int = 20
    rate_table_size: int = 100_000
    max_body: int = 64 * 1024
    trust_forwarded: bool = False
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 1000
    max_per_address: int = 32


class _Reject(Exception):
    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers


class DiscoveryService:
    """Request handlers plus the state they share (store, limiter, metrics, clock)."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ):
        self.settings = settings
        self.url = settings.url
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.limiter = RateLimiter(settings.rate, settings.burst, settings.rate_table_size)
        self._crypto_limiter = trio.CapacityLimiter(4)
        self.gate: ConnectionGate | None = None  # set by the server, for /metrics
        self.certificate_id: DeviceID | None = None  # HTTPS: what Syncthing's ?id= pins
        self._parsed: dict[str, DeviceID] = {}  # lookup text -> its device, for hits
        Endpoint = Callable[[HttpRequest], Awaitable[HttpResponse]]
        self._routes: dict[str, dict[str, Endpoint]] = {
            "/v1/announce": {"POST": self.announce},
            "/v1/lookup": {"GET": self.lookup},
            V3_PATH: {"POST": self.announce_v3, "GET": self.lookup},
            "/healthz": {"GET": self.healthz},
            "/metrics": {"GET": self.metrics_page},
        }

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route ``request`` (``http1.Handler``)."""
        routes = self._routes.get(request.path)
        if routes is None:
            self.metrics.reject("http-404")
            return _json({"error": "Not Found"}, 404)
        method = "GET" if request.method == "HEAD" else request.method
        handler = routes.get(method)
        if handler is None:
            self.metrics.reject("http-405")
            allowed = ", ".join(sorted({*routes, *(["HEAD"] if "GET" in routes else [])}))
            return _json({"error": "Method Not Allowed"}, 405, {"Allow": allowed})
        try:
            return await handler(request)
        except _Reject as exc:
            self.metrics.reject(exc.reason)
            if exc.status == 429:
                self.metrics.inc("rate_limited_total")
            return _json({"error": exc.message}, exc.status, exc.headers)
        except StoreUnavailableError as exc:
            log.warning("store unavailable: %s", exc)
            return _json(
                {"error": "the store is unavailable; try again later"},
                503,
                {"Retry-After": "60"},
            )

    # --- handlers -------------------------------------------------------------------

    async def announce(self, request: HttpRequest) -> HttpResponse:
        source = self._source(request)
        self._rate_limit(source)
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise _Reject(400, announcement.MALFORMED, "the body is not valid JSON") from exc
        if self.url is None:
            raise _Reject(503, "not-ready", "the server's public URL is not known yet")
        now = self.clock()
        check = functools.partial(
            announcement.verify_announcement, body, self.url, now, self.settings.window
        )
        try:
            device, addresses = await trio.to_thread.run_sync(check, limiter=self._crypto_limiter)
            addresses = normalize_addresses(addresses, source)
        except AnnouncementError as exc:
            raise _Reject(_STATUS_BY_REASON.get(exc.reason, 400), exc.reason, str(exc)) from exc
        keep = 2 * self.settings.window + 1
        if not await self.store.claim_timestamp(device, body["timestamp"], now, keep):
            raise _Reject(
                409, REPLAYED, "timestamp is not newer than the last accepted announcement"
            )
        await self.store.put(device, addresses, now, self.settings.ttl)
        self.metrics.inc("announces_total")
        log.debug("announce %s from %s: %s", device.short_str(), source, addresses)
        return HttpResponse(204, headers={"Reannounce-After": str(self.settings.reannounce_after)})

    async def announce_v3(self, request: HttpRequest) -> HttpResponse:
        """Syncthing's announcement: the device is the TLS client certificate's."""
        source = self._source(request)
        self._rate_limit(source)
        try:
            der = client_certificate(request.state, request.headers, self.settings.trust_forwarded)
            if der is None:
                raise AnnouncementError(
                    NO_CERTIFICATE, "announce over HTTPS with the device certificate"
                )
            addresses = usable_addresses(announced_addresses(request.body), source)
        except AnnouncementError as exc:
            raise _Reject(_STATUS_BY_REASON.get(exc.reason, 400), exc.reason, str(exc)) from exc
        device = DeviceID.from_cert_der(der)
        await self.store.put(device, addresses, self.clock(), self.settings.ttl)
        self.metrics.inc("announces_total")
        log.debug("announce (v3) %s from %s: %s", device.short_str(), source, addresses)
        return HttpResponse(204, headers={"Reannounce-After": str(self.settings.reannounce_after)})

    async def lookup(self, request: HttpRequest) -> HttpResponse:
        self._rate_limit(self._source(request))
        text = _device_param(request)
        if not text:
            raise _Reject(400, announcement.MALFORMED, "missing ?device=<device ID>")
        device = self._parsed.get(text)
        cached = device is not None
        if device is None:
            try:
                device = DeviceID.parse(text[:100])
            except DeviceIDError as exc:
                raise _Reject(400, "bad-device-id", str(exc)) from exc
        record = await self.store.get(device, self.clock())
        self.metrics.inc("lookups_total")
        if record is None:
            self.metrics.inc("lookup_misses_total")
            shown = text if _CANONICAL_ID.fullmatch(text) else str(device)
            return _json(
                {"error": f"device {shown} is not known"},
                404,
                {"Retry-After": str(self.settings.retry_after)},
            )
        self.metrics.inc("lookup_hits_total")
        if not cached:
            parsed = self._parsed
            if len(parsed) >= PARSED_CACHE_SIZE:
                del parsed[next(iter(parsed))]  # the oldest entry
            parsed[text] = device
        return HttpResponse(200, record.answer, {}, "application/json")

    async def healthz(self, request: HttpRequest) -> HttpResponse:
        await self.store.ping()
        return _json({"status": "ok"})

    async def metrics_page(self, request: HttpRequest) -> HttpResponse:
        devices = await self.store.size(self.clock())
        connections = self.gate.statistics() if self.gate is not None else None
        text = self.metrics.render(devices=devices, connections=connections)
        return HttpResponse(200, text.encode(), content_type="text/plain; version=0.0.4")

    # --- plumbing -------------------------------------------------------------------

    def _source(self, request: HttpRequest) -> str:
        """The client's IP: the peer, or X-Forwarded-For's last hop with --trust-forwarded."""
        host = request.client
        if self.settings.trust_forwarded:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                host = forwarded.split(",")[-1].strip()
        ip = _canonical_ip(host)
        if ip is None:
            if self.settings.trust_forwarded and host:
                raise _Reject(400, "bad-forwarded-for", "X-Forwarded-For is not an IP")
            return host
        return ip

    def _rate_limit(self, source: str) -> None:
        key = source
        if ":" in source:  # one IPv6 host usually owns a whole /64
            key = str(ipaddress.ip_network(f"{source}/64", strict=False).network_address)
        wait = self.limiter.acquire(key, self.clock())
        if wait > 0:
            raise _Reject(
                429,
                "rate-limited",
                "too many requests from this address; slow down",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )


# A device ID as str(DeviceID) writes it: what every client sends. Parsed without error,
# such a text is its own canonical form, and formatting an unknown ID (base32 and four
# Luhn checks, not cached for IDs never seen) would cost a 404 more than the rest.
_CANONICAL_ID = re.compile(r"[A-Z2-7]{7}(?:-[A-Z2-7]{7}){7}")


def _device_param(request: HttpRequest) -> str | None:
    """``?device=``: the whole query when it is only that (every client's lookup: no
    general query parsing), else from the parsed query."""
    query = request.query_string
    if query.startswith(b"device=") and b"&" not in query:
        return urllib.parse.unquote_plus(query[7:].decode("latin-1"))
    return request.query_params.get("device")


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    body = json.dumps(data, separators=(",", ":")).encode()
    return HttpResponse(status, body, headers or {}, "application/json")


@functools.lru_cache(maxsize=4096)
def _canonical_ip(host: str) -> str | None:
    """``host`` as a canonical IP (IPv4-mapped IPv6 as IPv4), None if not an IP. Cached:
    it runs on every request and the same sources come back (a proxy's is always one)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)
