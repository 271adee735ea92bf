"""Token buckets and the rate-limited stream, on trio's mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import check_half_closeable_stream

from p2psync.net.ratelimit import RateLimitedStream, TokenBucket, acquire_all


async def timed(coro) -> float:
    start = trio.current_time()
    await coro
    return trio.current_time() - start


async def test_bucket_waits_for_tokens(autojump_clock):
    bucket = TokenBucket(1000, burst=1000)
    assert await timed(bucket.acquire(1000)) == pytest.approx(0)  # starts full
    assert await timed(bucket.acquire(500)) == pytest.approx(0.5)
    # More than the burst: wait for a full bucket, then owe the rest.
    assert await timed(bucket.acquire(3000)) == pytest.approx(1.0)
    assert await timed(bucket.acquire(1)) == pytest.approx(2.001)


async def test_long_run_rate_holds(autojump_clock):
    bucket = TokenBucket(10_000, burst=1_000)
    elapsed = 0.0
    for _ in range(100):
        elapsed += await timed(bucket.acquire(1_000))
    # 100 kB at 10 kB/s, less the initial burst.
    assert elapsed == pytest.approx(9.9, rel=1e-3)


async def test_unlimited_never_waits(autojump_clock):
    bucket = TokenBucket(0)
    assert bucket.is_unlimited
    assert await timed(bucket.acquire(10**12)) == 0
    assert TokenBucket.unlimited().is_unlimited


async def test_cancelled_acquire_takes_nothing(autojump_clock):
    bucket = TokenBucket(100, burst=100)
    await bucket.acquire(100)  # empty
    with trio.move_on_after(0.5):
        await bucket.acquire(100)
    # 0.5 s refilled 50 tokens; the cancelled request took none of them.
    assert bucket.statistics().tokens == pytest.approx(50)
    assert await timed(bucket.acquire(100)) == pytest.approx(0.5)


async def test_waiters_are_served_in_order(autojump_clock):
    bucket = TokenBucket(100, burst=100)
    await bucket.acquire(100)
    order: list[tuple[str, float]] = []

    async def take(name: str, n: int) -> None:
        await bucket.acquire(n)
        order.append((name, trio.current_time()))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(take, "big", 100)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(take, "small", 1)
    assert [name for name, _ in order] == ["big", "small"]
    assert order[0][1] - start == pytest.approx(1.0)
    assert order[1][1] - start == pytest.approx(1.01)


async def test_raising_the_limit_wakes_waiters(autojump_clock):
    bucket = TokenBucket(1, burst=1000)
    await bucket.acquire(1000)

    async def loosen() -> None:
        await trio.sleep(2)
        bucket.set_rate(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(loosen)
        # Would take 1000 s at the old rate.
        assert await timed(bucket.acquire(1000)) == pytest.approx(2)


def test_bucket_can_be_built_outside_trio():
    bucket = TokenBucket(5000)
    assert bucket.burst == 64 * 1024
    with pytest.raises(ValueError):
        TokenBucket(-1)


async def test_acquire_all_charges_every_bucket(autojump_clock):
    device, shared = TokenBucket(1000, burst=1000), TokenBucket(500, burst=500)
    assert await timed(acquire_all([device, shared], 500)) == 0
    # The per-device bucket has 500 left; the global one is empty: 1 s for 500 more.
    assert await timed(acquire_all([device, shared], 500)) == pytest.approx(1.0)


async def test_stream_send_limit(autojump_clock):
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a, send_buckets=[TokenBucket(10_000, burst=10_000)])
    elapsed = await timed(limited.send_all(b"x" * 50_000))
    assert elapsed == pytest.approx(4.0, rel=1e-3)
    received = b""
    while len(received) < 50_000:
        received += await b.receive_some()
    assert received == b"x" * 50_000


async def test_stream_receive_limit(autojump_clock):
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(b, receive_buckets=[TokenBucket(10_000, burst=10_000)])
    await a.send_all(b"y" * 50_000)
    start = trio.current_time()
    received = b""
    while len(received) < 50_000:
        received += await limited.receive_some(8_000)
    # 40 kB beyond the burst at 10 kB/s, less the 2 kB of the last read, still owed.
    assert trio.current_time() - start == pytest.approx(3.8, rel=1e-3)
    assert received == b"y" * 50_000


async def test_global_limit_is_shared_between_devices(autojump_clock):
    shared = TokenBucket(10_000, burst=10_000)
    per_device = [TokenBucket(100_000, burst=100_000) for _ in range(2)]
    pairs = [trio.testing.memory_stream_pair() for _ in range(2)]
    senders = [
        RateLimitedStream(a, send_buckets=[own, shared], chunk_size=5_000)
        for (a, _), own in zip(pairs, per_device, strict=True)
    ]
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for sender in senders:
            nursery.start_soon(sender.send_all, b"z" * 50_000)
    # 100 kB through a 10 kB/s global bucket that starts with 10 kB.
    assert trio.current_time() - start == pytest.approx(9.0, rel=1e-3)


async def test_rate_limited_stream_conformance(autojump_clock):
    async def make():
        a, b = trio.testing.memory_stream_pair()
        buckets = [TokenBucket(1_000_000, burst=1_000)]
        return (
            RateLimitedStream(a, send_buckets=buckets, receive_buckets=buckets),
            RateLimitedStream(b, send_buckets=buckets, receive_buckets=buckets),
        )

    async def make_clogged():
        a, b = trio.testing.lockstep_stream_pair()
        return RateLimitedStream(a), RateLimitedStream(b)

    await check_half_closeable_stream(make, make_clogged)
