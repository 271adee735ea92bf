"""Two mDNS discovery services on loopback find each other (real zeroconf, 127.0.0.1 only)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio
from zeroconf import ServiceInfo, Zeroconf

from p2psync.discovery.cache import AddressCache
from p2psync.discovery.mdns import (
    SERVICE_TYPE,
    DiscoveredDevice,
    MdnsDiscovery,
    _Resolved,
    _Zeroconf,
)
from p2psync.errors import ConfigError
from p2psync.identity import DeviceID, generate_identity

LOOPBACK = ["127.0.0.1"]
DEADLINE = 10.0  # mDNS on loopback is normally sub-second; this only guards slow CI


async def wait_until(observer: MdnsDiscovery, condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds, re-checking whenever ``observer`` learns something."""
    with trio.fail_after(DEADLINE):
        while not condition():
            await observer.wait_changed()


@contextmanager
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield

    def leaked() -> list[threading.Thread]:
        # Idle trio worker threads linger in trio's cache by design; everything else must end.
        return [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith("Trio thread")
        ]

    deadline = time.monotonic() + DEADLINE
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert leaked() == []


def urls(observer: MdnsDiscovery, device: DeviceID) -> list[str]:
    """Live cached addresses ``observer`` holds for ``device`` right now."""
    return observer.cache.addresses(device.raw, trio.current_time())


def listed(observer: MdnsDiscovery) -> set[DeviceID]:
    """Devices in ``observer``'s discovered table (other p2psync instances may be on the LAN,
    so tests only ask about their own IDs)."""
    return {d.device_id for d in observer.discovered()}


def new_device() -> DeviceID:
    return generate_identity().device_id


def make(
    device: DeviceID,
    port: int | Callable[[], int | None],
    known: set[bytes],
    cache: AddressCache | None = None,
    **kwargs: object,
) -> MdnsDiscovery:
    return MdnsDiscovery(
        device_id=device,
        listen_port=port,
        interfaces=LOOPBACK,
        cache=cache if cache is not None else AddressCache(),
        is_known=lambda raw: raw in known,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_known_peers_land_in_each_others_cache_with_a_ttl() -> None:
    a_id, b_id = new_device(), new_device()
    a = make(a_id, 22001, {b_id.raw}, ttl=60)
    b = make(b_id, 22002, {a_id.raw}, ttl=60)
    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            await wait_until(a, lambda: bool(urls(a, b_id)))
            await wait_until(b, lambda: bool(urls(b, a_id)))
            now = trio.current_time()
            assert a.cache.addresses(b_id.raw, now) == ["tcp://127.0.0.1:22002"]
            assert b.cache.addresses(a_id.raw, now) == ["tcp://127.0.0.1:22001"]
            assert a.cache.sources(b_id.raw, now) == {"tcp://127.0.0.1:22002": "mdns"}
            # Not cached forever: the entry is gone one ttl later.
            assert a.cache.addresses(b_id.raw, now + 61) == []
            # Known devices are not "discovered"; our own announcement is ignored.
            assert b_id not in listed(a) and a_id not in listed(b)
            await wait_until(a, lambda: a.statistics().ignored_own >= 1)
            assert a.cache.addresses(a_id.raw, now) == []
            assert a.statistics().known_cached >= 1
            nursery.cancel_scope.cancel()


async def test_unknown_device_is_listed_not_cached() -> None:
    a_id, b_id = new_device(), new_device()
    seen: list[DiscoveredDevice] = []
    a = make(a_id, 22011, set(), on_discovered=seen.append)
    b = make(b_id, 22012, set())
    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            await wait_until(a, lambda: b_id in listed(a))
            [entry] = [d for d in a.discovered() if d.device_id == b_id]
            assert entry.addresses == ("tcp://127.0.0.1:22012",)
            assert entry.last_seen <= trio.current_time()
            assert [d.device_id for d in seen if d.device_id == b_id] == [b_id]
            assert urls(a, b_id) == []
            assert a_id not in listed(a)
            nursery.cancel_scope.cancel()


# Unique per run, so concurrent test runs on one host cannot confuse each other.
RAW_TAG = secrets.token_hex(4)
RAW_PORT = 40000 + secrets.randbelow(20000)


def _register_raw(zc: Zeroconf, label: str, properties: dict[str, str]) -> None:
    label = f"{label}-{RAW_TAG}"
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{label}.{SERVICE_TYPE}",
        port=RAW_PORT,
        properties=properties,
        server=f"{label}.local.",
        parsed_addresses=["127.0.0.1"],
    )
    zc.register_service(info, cooperating_responders=True)


async def test_malformed_and_spoofed_own_records_are_ignored() -> None:
    a_id, b_id = new_device(), new_device()
    a = make(a_id, 22021, {b_id.raw})
    b = make(b_id, 22022, set())
    with no_leaked_threads():
        raw = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=LOOPBACK))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                await trio.to_thread.run_sync(_register_raw, raw, "bad-id", {"id": "nope"})
                await trio.to_thread.run_sync(_register_raw, raw, "no-id", {"v": "1"})
                # A record claiming to be us under another name.
                await trio.to_thread.run_sync(_register_raw, raw, "fake-me", {"id": str(a_id)})
                await wait_until(a, lambda: a.statistics().ignored_malformed >= 2)
                await wait_until(a, lambda: a.statistics().ignored_own >= 2)
                assert a_id not in listed(a)
                raw_url = f"tcp://127.0.0.1:{RAW_PORT}"
                assert not any(raw_url in d.addresses for d in a.discovered())
                assert urls(a, a_id) == []
                # Still working: a real peer that starts afterwards is found.
                await nursery.start(b.run)
                await wait_until(a, lambda: bool(urls(a, b_id)))
                nursery.cancel_scope.cancel()
        finally:
            await trio.to_thread.run_sync(raw.close)


async def test_goodbye_forgets_mdns_addresses_and_discovered_entry() -> None:
    a_id, b_id, c_id = new_device(), new_device(), new_device()
    a = make(a_id, 22031, {b_id.raw})
    b = make(b_id, 22032, set())
    c = make(c_id, 22033, set())
    elsewhere = "tcp://192.0.2.7:22000"  # as if from global discovery; never dialed here
    a.cache.add(b_id.raw, [elsewhere], source="global", ttl=60, now=trio.current_time())
    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            peers = trio.CancelScope()

            async def run_peers() -> None:
                with peers:
                    async with trio.open_nursery() as inner:
                        await inner.start(b.run)
                        await inner.start(c.run)

            nursery.start_soon(run_peers)
            url = "tcp://127.0.0.1:22032"
            await wait_until(a, lambda: url in urls(a, b_id))
            await wait_until(a, lambda: c_id in listed(a))
            peers.cancel()  # b and c unregister: goodbye packets
            await wait_until(a, lambda: url not in urls(a, b_id))
            await wait_until(a, lambda: c_id not in listed(a))
            # Addresses from other sources are not touched.
            assert urls(a, b_id) == [elsewhere]
            nursery.cancel_scope.cancel()


async def test_port_change_is_reannounced() -> None:
    a_id, b_id = new_device(), new_device()
    port: list[int | None] = [22041]
    a = make(a_id, lambda: port[0], {b_id.raw}, port_poll_interval=0.05)
    b = make(b_id, 22042, {a_id.raw}, refresh_interval=0.5)
    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            await wait_until(b, lambda: "tcp://127.0.0.1:22041" in urls(b, a_id))
            port[0] = 22043
            await wait_until(a, lambda: a.statistics().announced_port == 22043)
            await wait_until(b, lambda: "tcp://127.0.0.1:22043" in urls(b, a_id))
            nursery.cancel_scope.cancel()


async def test_live_peer_is_refreshed_before_its_ttl_runs_out() -> None:
    a_id, b_id = new_device(), new_device()
    a = make(a_id, 22051, {b_id.raw}, ttl=1.0, refresh_interval=0.2)
    b = make(b_id, 22052, set())
    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            await wait_until(a, lambda: bool(urls(a, b_id)))
            first = trio.current_time()
            # An entry written at `first` would be dead at first + 1.5; a refresh keeps it alive.
            await wait_until(a, lambda: bool(a.cache.addresses(b_id.raw, first + 1.5)))
            nursery.cancel_scope.cancel()


class _FirstResolveLost(_Zeroconf):
    """Real zeroconf whose first answer to each resolve is lost, as on a busy host."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.lost: set[str] = set()

    def resolve(self, name: str, timeout: float) -> _Resolved | None:
        if name not in self.lost:
            self.lost.add(name)
            return None
        return super().resolve(name, timeout)


async def test_a_lost_resolve_is_retried_before_the_next_refresh() -> None:
    a_id, b_id = new_device(), new_device()
    a = make(a_id, 22071, set())
    # The refresh is far beyond the deadline: only the retry can find a in time.
    b = make(b_id, 22072, {a_id.raw}, refresh_interval=600.0, retry_after=0.05)
    b.open_zeroconf = _FirstResolveLost
    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            await wait_until(b, lambda: "tcp://127.0.0.1:22071" in urls(b, a_id))
            assert b.statistics().resolves_failed >= 1
            nursery.cancel_scope.cancel()


async def test_cancellation_propagates_and_stops_zeroconf_threads() -> None:
    a = make(new_device(), 22061, set())
    scope = trio.CancelScope()
    outcome: dict[str, bool] = {}

    async def runner(task_status: trio.TaskStatus[MdnsDiscovery]) -> None:
        with scope:
            await a.run(task_status=task_status)
            outcome["returned_normally"] = True  # would mean Cancelled was swallowed
        outcome["cancelled_caught"] = scope.cancelled_caught

    with no_leaked_threads():
        async with trio.open_nursery() as nursery:
            started = await nursery.start(runner)
            assert started is a
            assert a.statistics().announced_port == 22061
            scope.cancel()
    assert outcome == {"cancelled_caught": True}


async def test_unusable_interface_is_a_config_error() -> None:
    a = make(new_device(), 22071, set())
    a.interfaces = ["not-an-ip"]
    with no_leaked_threads():
        with pytest.raises(ConfigError, match="cannot open mDNS sockets"):
            with trio.fail_after(DEADLINE):
                await a.run()
