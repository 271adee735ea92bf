"""The daemon's global-discovery client: announce our addresses, look peers up.

One announce loop per server (honouring Reannounce-After, woken early by
``notify_addresses_changed``) and one lookup loop for every configured device that has
dynamic addresses and is not connected. Positive answers go into the AddressCache for
``positive_ttl``; a 404 clears that server's entries and is not asked again before its
Retry-After. Failures are logged and retried with back-off; nothing here crashes the
daemon. Scheduling and the cache use ``clock`` (trio.current_time by default); the
signed timestamps use ``wall_clock`` (Unix time).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import trio

from ..errors import ConfigError
from ..identity import DeviceID, Identity
from ..protocol.relay import is_relay_url, parse_relay_url
from .announcement import sign_announcement
from .cache import AddressCache
from .syncthing_v3 import V3Client, V3Server, parse_v3_server

log = logging.getLogger(__name__)

MAX_ADDRESSES_ACCEPTED = 32
FIRST_ANNOUNCE_DELAY = 3.0


@dataclass
class ServerState:
    """What we know about one discovery server (see ``GlobalDiscovery.statistics``)."""

    url: str
    failures: int = 0
    last_timestamp: int = 0
    last_announce_ok: bool | None = None
    last_error: str = ""


class GlobalDiscovery:
    """Announces to and looks up on a list of discovery servers (base URLs)."""

    def __init__(
        self,
        *,
        identity: Identity,
        servers: list[str],
        get_addresses: Callable[[], list[str]],
        lookup_devices: Callable[[], list[DeviceID]],
        cache: AddressCache,
        http: httpx.AsyncClient | None = None,
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = trio.current_time,
        wall_clock: Callable[[], float] = time.time,
        positive_ttl: float = 300.0,
        negative_ttl: float = 60.0,
        default_reannounce: float = 1800.0,
        min_interval: float = 10.0,
        backoff: tuple[float, float] = (60.0, 1800.0),
        lookup_interval: float = 60.0,
        max_parallel_lookups: int = 4,
        first_announce_delay: float = 0.0,
    ) -> None:
        self.identity = identity
        self.servers = {url.rstrip("/"): ServerState(url.rstrip("/")) for url in servers}
        self.get_addresses = get_addresses
        self.lookup_devices = lookup_devices
        self.cache = cache
        self.clock = clock
        self.wall_clock = wall_clock
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.default_reannounce = default_reannounce
        self.min_interval = min_interval
        self.backoff = backoff
        self.lookup_interval = lookup_interval
        # The daemon waits a moment before its first announcement, as Syncthing does, so
        # that it includes the relays joined at start (peers cache a lookup for minutes).
        self.first_announce_delay = first_announce_delay
        self._http = http
        self._verify = verify
        self._lookup_limiter = trio.CapacityLimiter(max_parallel_lookups)
        self._next_lookup: dict[tuple[str, bytes], float] = {}
        self._lookup_failures: dict[str, int] = {}
        self._changed = {url: trio.Event() for url in self.servers}
        self._lookup_wakeup = trio.Event()
        # Syncthing (stdiscosrv) servers: /v2/ URLs, spoken to with V3Client.
        self._v3_servers: dict[str, V3Server] = {
            url: v3 for url in self.servers if (v3 := parse_v3_server(url)) is not None
        }
        self._v3: dict[str, V3Client] = {}

    # --- what the rest of the daemon calls ---------------------------------------------

    def notify_addresses_changed(self) -> None:
        """Our listen addresses changed: announce again soon (at most every min_interval)."""
        for event in self._changed.values():
            event.set()

    def notify_lookup_needed(self) -> None:
        """The set of devices to look up changed (e.g. a device was added or disconnected)."""
        self._lookup_wakeup.set()

    def statistics(self) -> dict[str, ServerState]:
        return dict(self.servers)

    async def serve(
        self, *, task_status: trio.TaskStatus[GlobalDiscovery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the announce and lookup loops until cancelled; reports ``self`` when started."""
        own_client = self._http is None
        if own_client:
            self._http = httpx.AsyncClient(verify=self._verify, timeout=10.0)
        for url, server in self._v3_servers.items():
            self._v3[url] = await trio.to_thread.run_sync(V3Client, self.identity, server)
        try:
            async with trio.open_nursery() as nursery:
                for url in self.servers:
                    nursery.start_soon(self._announce_loop, url)
                nursery.start_soon(self._lookup_loop)
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True):
                if own_client and self._http is not None:
                    await self._http.aclose()
                for client in self._v3.values():
                    await client.aclose()

    # --- one step each (tests drive these directly) ----------------------------------

    async def announce(self, url: str) -> float:
        """Announce to ``url`` once; returns seconds until the next announcement is due."""
        state = self.servers[url]
        addresses = list(self.get_addresses())
        v3 = self._v3_client(url)
        if not addresses or (v3 is not None and not v3.server.announces):
            return self.default_reannounce
        # Strictly increasing timestamps: the server rejects a repeated one as a replay.
        timestamp = max(int(self.wall_clock()), state.last_timestamp + 1)
        try:
            if v3 is not None:
                response = await v3.announce(addresses)
            else:
                body = sign_announcement(self.identity, addresses, timestamp, url)
                response = await self._client().post(f"{url}/v1/announce", json=body)
        except httpx.HTTPError as exc:
            return self._announce_failed(state, f"{type(exc).__name__}: {exc}", None)
        state.last_timestamp = timestamp
        if response.status_code == 204:
            state.failures = 0
            state.last_announce_ok = True
            state.last_error = ""
            reannounce = _seconds(response.headers.get("Reannounce-After"))
            return max(self.min_interval, reannounce or self.default_reannounce)
        return self._announce_failed(
            state,
            f"HTTP {response.status_code}: {_error_text(response)}",
            _seconds(response.headers.get("Retry-After")),
        )

    async def lookup_due(self, now: float) -> float:
        """Look up every (server, device) pair that is due; returns seconds until the next."""
        devices = {d.raw: d for d in self.lookup_devices()}
        for key in [k for k in self._next_lookup if k[1] not in devices]:
            del self._next_lookup[key]
        due = [
            (url, device)
            for device in devices.values()
            for url in self.servers
            if self._next_lookup.get((url, device.raw), now) <= now
        ]
        async with trio.open_nursery() as nursery:
            for url, device in due:
                nursery.start_soon(self._lookup_limited, url, device, now)
        upcoming = list(self._next_lookup.values())
        return max(0.0, min(upcoming) - now) if upcoming else self.lookup_interval

    async def lookup(self, url: str, device: DeviceID, now: float) -> None:
        """Ask ``url`` about ``device``; update the cache and when to ask next."""
        key, source = (url, device.raw), f"global:{url}"
        v3 = self._v3_client(url)
        if v3 is not None and not v3.server.looks_up:
            self._next_lookup[key] = now + 86_400
            return
        try:
            if v3 is not None:
                response = await v3.lookup(device)
            else:
                response = await self._client().get(
                    f"{url}/v1/lookup", params={"device": str(device)}
                )
        except httpx.HTTPError as exc:
            self._next_lookup[key] = now + self._lookup_failed(
                url, f"{type(exc).__name__}: {exc}", None
            )
            return
        if response.status_code == 200:
            addresses = _parse_addresses(response)
            if addresses is None:
                self._next_lookup[key] = now + self._lookup_failed(
                    url, "malformed 200 answer", None
                )
                return
            self._lookup_failures[url] = 0
            self.cache.replace(device.raw, addresses, source=source, ttl=self.positive_ttl, now=now)
            self._next_lookup[key] = now + self.positive_ttl
        elif response.status_code == 404:
            self._lookup_failures[url] = 0
            self.cache.replace(device.raw, [], source=source, ttl=0, now=now)
            retry = _seconds(response.headers.get("Retry-After"))
            self._next_lookup[key] = now + (retry or self.negative_ttl)
        else:
            retry = _seconds(response.headers.get("Retry-After"))
            self._next_lookup[key] = now + self._lookup_failed(
                url, f"HTTP {response.status_code}: {_error_text(response)}", retry
            )

    # --- loops and helpers -----------------------------------------------------------

    async def _announce_loop(self, url: str) -> None:
        await trio.sleep(self.first_announce_delay)
        while True:
            self._changed[url] = trio.Event()
            started = trio.current_time()
            delay = await self.announce(url)
            changed = self._changed[url]
            with trio.move_on_at(started + delay):
                if self.servers[url].failures:
                    await trio.sleep_forever()  # backing off: address changes wait too
                await changed.wait()
                await trio.sleep_until(started + self.min_interval)

    async def _lookup_loop(self) -> None:
        while True:
            self._lookup_wakeup = trio.Event()
            wait = await self.lookup_due(self.clock())
            with trio.move_on_after(min(wait, self.lookup_interval)):
                await self._lookup_wakeup.wait()

    async def _lookup_limited(self, url: str, device: DeviceID, now: float) -> None:
        async with self._lookup_limiter:
            await self.lookup(url, device, now)

    def _v3_client(self, url: str) -> V3Client | None:
        server = self._v3_servers.get(url)
        if server is None:
            return None
        if url not in self._v3:  # serve() builds them in a thread; tests may not run it
            self._v3[url] = V3Client(self.identity, server)
        return self._v3[url]

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("GlobalDiscovery needs an http client: pass http= or run serve()")
        return self._http

    def _backoff(self, failures: int) -> float:
        base, cap = self.backoff
        return min(cap, base * 2 ** max(0, failures - 1))

    def _announce_failed(self, state: ServerState, why: str, retry_after: float | None) -> float:
        state.failures += 1
        state.last_announce_ok = False
        state.last_error = why
        delay = max(retry_after or 0.0, self._backoff(state.failures))
        log.warning("announce to %s failed (%s); retrying in %.0f s", state.url, why, delay)
        return delay

    def _lookup_failed(self, url: str, why: str, retry_after: float | None) -> float:
        failures = self._lookup_failures.get(url, 0) + 1
        self._lookup_failures[url] = failures
        delay = max(retry_after or 0.0, self._backoff(failures))
        log.warning("lookup on %s failed (%s); retrying in %.0f s", url, why, delay)
        return delay


async def serve_global_discovery(
    *,
    identity: Identity,
    servers: list[str],
    get_addresses: Callable[[], list[str]],
    lookup_devices: Callable[[], list[DeviceID]],
    cache: AddressCache,
    verify: ssl.SSLContext | bool = True,
    first_announce_delay: float = FIRST_ANNOUNCE_DELAY,
    task_status: trio.TaskStatus[GlobalDiscovery] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run global discovery until cancelled; reports the GlobalDiscovery object when started.

    ``verify``: True (system CAs), an ``ssl.SSLContext`` (e.g. trusting a private CA), or
    False (tests with self-signed server certificates only).
    """
    discovery = GlobalDiscovery(
        identity=identity,
        servers=servers,
        get_addresses=get_addresses,
        lookup_devices=lookup_devices,
        cache=cache,
        verify=verify,
        first_announce_delay=first_announce_delay,
    )
    await discovery.serve(task_status=task_status)


def _seconds(value: str | None) -> float | None:
    """A delta-seconds header (Retry-After, Reannounce-After), clamped to 1 s .. 1 day."""
    if value is None or not value.strip().isdigit():
        return None
    return float(min(86_400, max(1, int(value.strip()))))


def _parse_addresses(response: httpx.Response) -> list[str] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    addresses = body.get("addresses") if isinstance(body, dict) else None
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        return None
    usable = [a for a in addresses if len(a) <= 256 and (a.startswith("tcp://") or _relay(a))]
    return usable[:MAX_ADDRESSES_ACCEPTED]


def _relay(address: str) -> bool:
    """A relay address a peer announced (the dialer reaches it through that relay)."""
    if not is_relay_url(address):
        return False
    try:
        parse_relay_url(address)
    except ConfigError:
        return False
    return True


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:200]
    return response.text[:200]
