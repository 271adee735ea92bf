"""Bandwidth limits: trio token buckets and a stream wrapper that charges them.

A connection is typically charged to two buckets, the global one and its device's
one, so both limits hold. Time comes from ``trio.current_time()`` so tests can run
on a mock clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import trio

from ._conflict import ConflictDetector

# Bytes charged per step by RateLimitedStream: small enough that a global bucket
# interleaves many connections fairly, large enough to keep overhead low.
STREAM_CHUNK = 64 * 1024
_MIN_BURST = 64 * 1024
_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class BucketStatistics:
    rate: float
    burst: int
    tokens: float
    waiting: int


class TokenBucket:
    """A token bucket of ``rate_bytes_per_s`` refilling up to ``burst`` bytes.

    A rate of 0 means unlimited. ``acquire(n)`` may ask for more than ``burst``: it
    waits until the bucket is full, then goes into debt that later callers pay off, so
    the long-run rate holds for any request size. Waiters are served in FIFO order.
    """

    def __init__(self, rate_bytes_per_s: float = 0, burst: int | None = None) -> None:
        self._rate = 0.0
        self._burst = 0
        self._tokens = 0.0
        self._last: float | None = None  # set on first use: may be built outside trio
        self._lock = trio.Lock()
        self._changed = trio.Event()
        self._waiting = 0
        self.set_rate(rate_bytes_per_s, burst)
        self._tokens = float(self._burst)

    @classmethod
    def unlimited(cls) -> TokenBucket:
        return cls(0)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def is_unlimited(self) -> bool:
        return self._rate == 0

    def set_rate(self, rate_bytes_per_s: float, burst: int | None = None) -> None:
        """Change the limit (e.g. on config reload); takes effect for current waiters."""
        if rate_bytes_per_s < 0:
            raise ValueError("a rate limit cannot be negative")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1 byte")
        if self._last is not None:
            self._refill()
        self._rate = float(rate_bytes_per_s)
        self._burst = burst if burst is not None else max(int(rate_bytes_per_s), _MIN_BURST)
        self._tokens = min(self._tokens, float(self._burst))
        # Wake the waiter so it recomputes its wait under the new limit.
        self._changed.set()
        self._changed = trio.Event()

    def _refill(self) -> None:
        now = trio.current_time()
        if self._rate and self._last is not None:
            self._tokens = min(float(self._burst), self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def acquire(self, n: int) -> None:
        """Wait until ``n`` bytes may pass, then take them. Cancelling takes nothing."""
        await self._wait(n, take=True)

    async def wait_available(self, n: int = 1) -> None:
        """Wait until ``n`` bytes could pass, without taking them (pair with charge())."""
        await self._wait(n, take=False)

    def charge(self, n: int) -> None:
        """Take ``n`` bytes now, going into debt if needed (for bytes already moved)."""
        if n < 0:
            raise ValueError("cannot charge a negative number of bytes")
        if not self.is_unlimited:
            self._refill()
            self._tokens -= n

    async def _wait(self, n: int, *, take: bool) -> None:
        if n < 0:
            raise ValueError("cannot acquire a negative number of bytes")
        if n == 0 or self.is_unlimited:
            await trio.lowlevel.checkpoint()
            return
        self._waiting += 1
        try:
            async with self._lock:
                while not self.is_unlimited:
                    self._refill()
                    need = min(n, self._burst)
                    if self._tokens + _EPSILON >= need:
                        if take:
                            self._tokens -= n
                        break
                    changed = self._changed
                    with trio.move_on_after((need - self._tokens) / self._rate):
                        await changed.wait()
        finally:
            self._waiting -= 1

    def statistics(self) -> BucketStatistics:
        self._refill()
        return BucketStatistics(self._rate, self._burst, self._tokens, self._waiting)


async def acquire_all(buckets: Iterable[TokenBucket], n: int) -> None:
    """Acquire ``n`` bytes from every bucket in turn (e.g. per-device, then global)."""
    for bucket in buckets:
        await bucket.acquire(n)


class RateLimitedStream(trio.abc.HalfCloseableStream):
    """Wrap ``stream`` so sending and receiving are charged to the given buckets.

    Sends are charged before the bytes go out. Receives are charged as they arrive,
    and the next read waits until the buckets are out of debt, so a slow bucket stops
    us reading and TCP pushes back on the sender.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        send_buckets: Sequence[TokenBucket] = (),
        receive_buckets: Sequence[TokenBucket] = (),
        chunk_size: int = STREAM_CHUNK,
    ) -> None:
        self.stream = stream
        self.send_buckets = tuple(send_buckets)
        self.receive_buckets = tuple(receive_buckets)
        self._chunk = chunk_size
        self._send_conflict = ConflictDetector("another task is sending on this stream")
        self._receive_conflict = ConflictDetector("another task is receiving on this stream")

    def _limited(self, buckets: Sequence[TokenBucket]) -> bool:
        return any(not b.is_unlimited for b in buckets)

    def _chunk_for(self, buckets: Sequence[TokenBucket]) -> int:
        # Never more than a bucket's burst per step, so waits stay smooth.
        bursts = [b.burst for b in buckets if not b.is_unlimited]
        return min([self._chunk, *bursts])

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            if not self._limited(self.send_buckets):
                await self.stream.send_all(data)
                return
            view = memoryview(data).cast("B")
            if not view:
                await self.stream.send_all(b"")
                return
            step = self._chunk_for(self.send_buckets)
            for start in range(0, len(view), step):
                chunk = view[start : start + step]
                await acquire_all(self.send_buckets, len(chunk))
                await self.stream.send_all(chunk)

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        with self._send_conflict:
            if not isinstance(self.stream, trio.abc.HalfCloseableStream):
                raise TypeError(f"{type(self.stream).__name__} cannot half-close")
            await self.stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        with self._receive_conflict:
            if not self._limited(self.receive_buckets):
                return await self.stream.receive_some(max_bytes)
            step = self._chunk_for(self.receive_buckets)
            max_bytes = step if max_bytes is None else min(max_bytes, step)
            # Wait for the buckets to be out of debt, read, then charge what arrived:
            # cancellation can never lose bytes already read.
            for bucket in self.receive_buckets:
                await bucket.wait_available()
            data = await self.stream.receive_some(max_bytes)
            for bucket in self.receive_buckets:
                bucket.charge(len(data))
            return data

    async def aclose(self) -> None:
        await self.stream.aclose()
