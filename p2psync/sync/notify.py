"""Small trio synchronisation helpers for the sync engine."""

from __future__ import annotations

import trio


class SequenceWatch:
    """A monotonically increasing number tasks can wait on (e.g. a folder's local sequence)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self._lot = trio.lowlevel.ParkingLot()

    def set(self, value: int) -> None:
        if value > self.value:
            self.value = value
            self._lot.unpark_all()

    def poke(self) -> None:
        """Wake waiters without changing the value (e.g. config changed)."""
        self._lot.unpark_all()

    async def wait_above(self, value: int) -> int:
        while self.value <= value:
            await self._lot.park()
        return self.value


class Wakeup:
    """A level-triggered flag: ``set()`` any number of times, ``wait()`` consumes it."""

    def __init__(self) -> None:
        self._flag = False
        self._lot = trio.lowlevel.ParkingLot()

    def set(self) -> None:
        self._flag = True
        self._lot.unpark_all()

    async def wait(self) -> None:
        while not self._flag:
            await self._lot.park()
        self._flag = False


class Counter:
    """A count that only goes up, and tasks can wait for its next step (e.g. the index
    updates from peers a folder stored)."""

    def __init__(self) -> None:
        self.value = 0
        self._stepped = trio.Event()  # replaced after each step

    def step(self) -> None:
        self.value += 1
        self._stepped.set()
        self._stepped = trio.Event()

    async def wait_step(self) -> None:
        await self._stepped.wait()
