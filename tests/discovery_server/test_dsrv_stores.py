"""One contract for every store: the in-memory one and Redis (a real redis-server)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from discovery_server.stores import MemoryStore, RedisStore, Store
from p2psync.identity import DeviceID

T0 = 1_700_000_000.0
A = DeviceID(b"\x01" * 32)
B = DeviceID(b"\x02" * 32)
_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    redis_store = RedisStore.from_url(url, prefix=f"contract{next(_prefixes)}:")
    yield redis_store
    await redis_store.aclose()


async def test_put_then_get(store: Store) -> None:
    assert await store.get(A, T0) is None
    await store.put(A, ["tcp://192.0.2.1:1", "tcp://192.0.2.2:2"], T0, 100)
    record = await store.get(A, T0 + 1)
    assert record is not None
    assert record.addresses == ("tcp://192.0.2.1:1", "tcp://192.0.2.2:2")
    assert record.seen == T0
    assert await store.get(B, T0 + 1) is None
    assert await store.size(T0 + 1) == 1


async def test_records_expire_by_the_callers_clock(store: Store) -> None:
    await store.put(A, ["tcp://192.0.2.1:1"], T0, 100)
    assert await store.get(A, T0 + 99) is not None
    assert await store.get(A, T0 + 100) is None
    await store.expire(T0 + 100)
    assert await store.size(T0 + 100) == 0


async def test_put_merges_with_per_address_expiry(store: Store) -> None:
    await store.put(A, ["tcp://192.0.2.1:1"], T0, 100)
    await store.put(A, ["tcp://[2001:db8::1]:1"], T0 + 50, 100)
    record = await store.get(A, T0 + 60)
    assert record is not None
    assert record.addresses == ("tcp://[2001:db8::1]:1", "tcp://192.0.2.1:1")  # newest first
    assert record.seen == T0 + 50
    record = await store.get(A, T0 + 120)
    assert record is not None and record.addresses == ("tcp://[2001:db8::1]:1",)


async def test_claim_timestamp_rejects_replays(store: Store) -> None:
    assert await store.claim_timestamp(A, 1000, T0, 300)
    assert not await store.claim_timestamp(A, 1000, T0, 300)
    assert not await store.claim_timestamp(A, 999, T0, 300)
    assert await store.claim_timestamp(B, 1000, T0, 300)  # per device
    assert await store.claim_timestamp(A, 1001, T0, 300)


async def test_expire_sweeps_dead_devices(store: Store) -> None:
    await store.put(A, ["tcp://192.0.2.1:1"], T0, 10)
    await store.put(B, ["tcp://192.0.2.1:2"], T0, 1000)
    assert await store.expire(T0 + 20) == 1
    assert await store.size(T0 + 20) == 1
    assert await store.get(B, T0 + 20) is not None


async def test_merged_addresses_are_capped_newest_first(store: Store) -> None:
    for batch in range(4):
        addresses = [f"tcp://192.0.2.{batch}:{port}" for port in range(1, 17)]
        await store.put(A, addresses, T0 + batch, 1000)
    record = await store.get(A, T0 + 10)
    assert record is not None
    assert len(record.addresses) == 32
    assert record.addresses[:16] == tuple(f"tcp://192.0.2.3:{port}" for port in range(1, 17))
    assert record.addresses[16:] == tuple(f"tcp://192.0.2.2:{port}" for port in range(1, 17))


async def test_memory_store_answer_changes_when_an_address_lapses_or_it_is_announced() -> None:
    store = MemoryStore()
    await store.put(A, ["tcp://192.0.2.1:1"], T0, 100)
    await store.put(A, ["tcp://192.0.2.2:2"], T0 + 50, 100)
    first = await store.get(A, T0 + 60)
    assert first is not None and first.valid_until == T0 + 100  # the older address lapses
    assert first.answer == (
        b'{"addresses":["tcp://192.0.2.2:2","tcp://192.0.2.1:1"],"seen":"2023-11-14T22:14:10Z"}'
    )
    assert await store.get(A, T0 + 99) == first
    lapsed = await store.get(A, T0 + 100)
    assert lapsed is not None and lapsed != first
    assert lapsed.addresses == ("tcp://192.0.2.2:2",) and lapsed.valid_until == T0 + 150
    await store.put(A, ["tcp://192.0.2.2:2"], T0 + 101, 100)
    renewed = await store.get(A, T0 + 101)
    assert renewed is not None and renewed.seen == T0 + 101 and renewed.valid_until == T0 + 201


async def test_memory_store_merges_replicated_announcements_in_any_order() -> None:
    """Replicas apply each other's announcements late: the later expiry and the later
    'seen' win whatever the order, so every replica ends with the same record."""
    early, late = (["tcp://192.0.2.1:1"], T0), (["tcp://192.0.2.1:1", "tcp://192.0.2.2:2"], T0 + 5)
    one, other = MemoryStore(), MemoryStore()
    for store, order in ((one, (early, late)), (other, (late, early))):
        for addresses, now in order:
            await store.put(A, addresses, now, 100)
    a, b = await one.get(A, T0 + 10), await other.get(A, T0 + 10)
    assert a is not None and a == b and a.seen == T0 + 5 and a.valid_until == T0 + 105
