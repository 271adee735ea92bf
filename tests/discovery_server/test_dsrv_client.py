"""The daemon-side global discovery client against a real in-process server."""

from __future__ import annotations

import time
from typing import Any

import httpx
import trio
from dsrv_helpers import FakeClock, RunningServer, WatchedStore, running_server

from p2psync.discovery.cache import AddressCache
from p2psync.discovery.global_client import GlobalDiscovery, serve_global_discovery
from p2psync.identity import DeviceID, Identity


def _client(
    server: RunningServer,
    identity: Identity,
    *,
    addresses: list[str],
    lookup: list[DeviceID],
    cache: AddressCache,
    **kw: Any,
) -> GlobalDiscovery:
    return GlobalDiscovery(
        identity=identity,
        servers=[server.url],
        get_addresses=lambda: addresses,
        lookup_devices=lambda: lookup,
        cache=cache,
        http=server.http,
        wall_clock=server.clock,
        **kw,
    )


async def test_announce_and_lookup_fill_the_cache(
    identity: Identity, other_identity: Identity
) -> None:
    async with running_server(reannounce_after=900) as server:
        cache = AddressCache()
        mine = _client(server, identity, addresses=["tcp://0.0.0.0:22000"], lookup=[], cache=cache)
        theirs = _client(
            server,
            other_identity,
            addresses=["tcp://192.0.2.7:22000"],
            lookup=[identity.device_id],
            cache=cache,
        )
        assert await mine.announce(server.url) == 900
        assert await theirs.announce(server.url) == 900
        assert mine.statistics()[server.url].last_announce_ok is True
        next_in = await theirs.lookup_due(now=100.0)
        assert next_in == 300.0  # positive answers are cached for positive_ttl
        assert cache.addresses(identity.device_id.raw, now=101.0) == ["tcp://127.0.0.1:22000"]
        assert cache.sources(identity.device_id.raw, now=101.0) == {
            "tcp://127.0.0.1:22000": f"global:{server.url}"
        }
        assert cache.addresses(identity.device_id.raw, now=400.0) == []  # TTL lapsed


async def test_negative_answer_honours_retry_after(
    identity: Identity, other_identity: Identity
) -> None:
    async with running_server(retry_after=60) as server:
        cache = AddressCache()
        client = _client(
            server, identity, addresses=[], lookup=[other_identity.device_id], cache=cache
        )
        lookups = lambda: server.counter("p2psync_discovery_lookups_total")  # noqa: E731
        assert await client.lookup_due(now=1000.0) == 60.0
        assert lookups() == 1
        assert await client.lookup_due(now=1030.0) == 30.0  # not asked again before Retry-After
        assert lookups() == 1
        # The device appears; the client still waits out the Retry-After, then finds it.
        other = _client(
            server, other_identity, addresses=["tcp://192.0.2.8:1"], lookup=[], cache=cache
        )
        await other.announce(server.url)
        await client.lookup_due(now=1059.0)
        assert lookups() == 1
        await client.lookup_due(now=1060.0)
        assert lookups() == 2
        assert cache.addresses(other_identity.device_id.raw, now=1060.0) == ["tcp://192.0.2.8:1"]


async def test_a_404_clears_what_that_server_said(
    identity: Identity, other_identity: Identity
) -> None:
    clock = FakeClock()
    async with running_server(clock=clock, ttl=600) as server:
        cache = AddressCache()
        cache.add(
            other_identity.device_id.raw, ["tcp://192.0.2.50:1"], source="config", ttl=10_000, now=0
        )
        other = _client(
            server, other_identity, addresses=["tcp://192.0.2.8:1"], lookup=[], cache=cache
        )
        client = _client(
            server, identity, addresses=[], lookup=[other_identity.device_id], cache=cache
        )
        await other.announce(server.url)
        await client.lookup_due(now=0.0)
        assert set(cache.addresses(other_identity.device_id.raw, now=1.0)) == {
            "tcp://192.0.2.8:1",
            "tcp://192.0.2.50:1",
        }
        clock.advance(600)  # the server forgets the device
        await client.lookup_due(now=300.0)
        assert cache.addresses(other_identity.device_id.raw, now=301.0) == ["tcp://192.0.2.50:1"]


async def test_failures_back_off_without_raising(identity: Identity) -> None:
    async with running_server(rate=0.01, burst=1) as server:
        cache = AddressCache()
        client = _client(
            server,
            identity,
            addresses=["tcp://192.0.2.1:1"],
            lookup=[],
            cache=cache,
            backoff=(5.0, 40.0),
        )
        assert await client.announce(server.url) == 1800.0  # the server's default Reannounce-After
        delay = await client.announce(server.url)  # rate limited: 429 + Retry-After 100
        state = client.statistics()[server.url]
        assert delay == 100.0 and state.failures == 1 and "429" in state.last_error
    # An unreachable server: connection refused -> exponential back-off.
    async with httpx.AsyncClient(timeout=2) as http:
        unreachable = GlobalDiscovery(
            identity=identity,
            servers=["http://127.0.0.1:1"],
            get_addresses=lambda: ["tcp://192.0.2.1:1"],
            lookup_devices=lambda: [identity.device_id],
            cache=AddressCache(),
            http=http,
            backoff=(5.0, 12.0),
        )
        assert [await unreachable.announce("http://127.0.0.1:1") for _ in range(3)] == [
            5.0,
            10.0,
            12.0,
        ]
        assert await unreachable.lookup_due(now=0.0) == 5.0


async def test_wrong_server_url_is_reported(identity: Identity) -> None:
    async with running_server(url="https://disco.example.org") as server:
        client = _client(
            server, identity, addresses=["tcp://192.0.2.1:1"], lookup=[], cache=AddressCache()
        )
        await client.announce(server.url)
        state = client.statistics()[server.url]
        assert state.last_announce_ok is False
        assert "403" in state.last_error and "https://disco.example.org" in state.last_error


async def test_serve_loops_announce_reannounce_on_change_and_look_up(
    identity: Identity, other_identity: Identity
) -> None:
    store = WatchedStore()
    async with running_server(store, clock=time.time) as server:  # type: ignore[arg-type]
        addresses = ["tcp://192.0.2.1:1"]
        cache = AddressCache()
        discovery = GlobalDiscovery(
            identity=identity,
            servers=[server.url],
            get_addresses=lambda: addresses,
            lookup_devices=lambda: [other_identity.device_id],
            cache=cache,
            min_interval=0.01,
        )
        async with trio.open_nursery() as nursery:
            started = await nursery.start(
                lambda task_status: discovery.serve(task_status=task_status)
            )
            assert started is discovery
            await store.wait_until(lambda: server.counter("p2psync_discovery_announces_total") == 1)
            await store.wait_until(
                lambda: server.counter("p2psync_discovery_lookup_misses_total") == 1
            )

            addresses[:] = ["tcp://192.0.2.2:2"]
            discovery.notify_addresses_changed()
            await store.wait_until(lambda: server.counter("p2psync_discovery_announces_total") == 2)
            record = await store.get(identity.device_id, time.time())
            assert record is not None and record.addresses[0] == "tcp://192.0.2.2:2"
            nursery.cancel_scope.cancel()


async def test_serve_global_discovery_reports_its_object(identity: Identity) -> None:
    store = WatchedStore()
    async with running_server(store, clock=time.time) as server:  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            discovery = await nursery.start(
                lambda task_status: serve_global_discovery(
                    identity=identity,
                    servers=[server.url + "/"],
                    get_addresses=lambda: ["tcp://192.0.2.3:3"],
                    lookup_devices=lambda: [],
                    cache=AddressCache(),
                    verify=False,
                    task_status=task_status,
                )
            )
            assert isinstance(discovery, GlobalDiscovery)
            await store.wait_until(lambda: server.counter("p2psync_discovery_announces_total") == 1)
            nursery.cancel_scope.cancel()
