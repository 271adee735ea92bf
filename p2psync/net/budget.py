"""A byte budget: caps how many bytes of requests are outstanding at once.

``acquire(n)`` waits until ``n`` bytes fit; a single request larger than the whole
budget is admitted alone (otherwise it could never run). This is what stops a slow or
greedy peer from making us buffer unbounded data: the reader stops reading instead.
"""

from __future__ import annotations

import trio


class ByteBudget:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._lot = trio.lowlevel.ParkingLot()

    def _fits(self, n: int) -> bool:
        return self.in_use == 0 or self.in_use + n <= self.capacity

    async def acquire(self, n: int) -> None:
        while not self._fits(n):
            await self._lot.park()
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def release(self, n: int) -> None:
        """Return ``n`` bytes (synchronous, so it is safe in ``finally`` after cancellation)."""
        self.in_use -= n
        self._lot.unpark_all()

    def statistics(self) -> dict[str, int]:
        return {"capacity": self.capacity, "in_use": self.in_use, "peak": self.peak}
