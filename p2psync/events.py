"""The event log: what happened in the daemon, for `p2psync events` and the API.

A bounded ring of events with increasing ids; readers long-poll for ids above the last
one they saw. Emitting never blocks and never grows memory without bound.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

import trio

DEFAULT_CAPACITY = 2000


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    time: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time": self.time, "data": self.data}


class EventLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._events: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._next_id = 1
        self._lot = trio.lowlevel.ParkingLot()

    def emit(self, type: str, **data: Any) -> Event:
        event = Event(self._next_id, type, time.time(), data)
        self._next_id += 1
        self._events.append(event)
        self._lot.unpark_all()
        return event

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def since(self, last_id: int, types: set[str] | None = None, limit: int = 500) -> list[Event]:
        out = [e for e in self._events if e.id > last_id and (types is None or e.type in types)]
        return out[:limit]

    async def wait_since(
        self,
        last_id: int,
        types: set[str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> list[Event]:
        """Events after ``last_id``; waits up to ``timeout`` seconds for the first one."""
        with trio.move_on_after(timeout):
            while True:
                events = self.since(last_id, types)
                if events:
                    return events
                await self._lot.park()
        return []
