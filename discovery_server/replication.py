"""The memory store replicated over sibling worker processes (``--workers N``).

Each worker holds a whole ``MemoryStore``. What a worker accepts (an announcement's
addresses, a ``/v1`` timestamp claimed) it applies to its own store at once and sends to
every sibling over a socket pair the parent set up; each sibling applies it to its store
as it arrives. A lookup on another worker finds the device once that has happened: a
loopback write and a read, normally well under a millisecond (docs/discovery-server.md,
"Both cores"). ``MemoryStore.put`` keeps the later expiry and ``seen``, so the replicas
agree whatever order the announcements reach them in.

Messages are msgpack arrays, back to back on the stream:
``[PUT, raw device ID, [addresses], now, ttl]`` and
``[CLAIM, raw device ID, timestamp, expires]``.

A ``/v1`` replay sent to two workers within that delay can be accepted by both; it can
only repeat what the device signed, within the freshness window.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgpack
import trio

from p2psync.identity import DeviceID

from .metrics import Metrics
from .stores import MemoryStore, Record

log = logging.getLogger(__name__)

PUT, CLAIM = 0, 1
QUEUE = 4096  # messages waiting per sibling before announcements wait for the link
BATCH = 256  # messages joined into one write


class ReplicatedStore:
    """A ``MemoryStore`` whose changes also go to sibling workers, and which applies
    theirs (``run`` does, for as long as the worker serves). A ``Store``."""

    def __init__(
        self, store: MemoryStore, siblings: Sequence[trio.SocketStream], metrics: Metrics
    ) -> None:
        self._store = store
        self._siblings = list(siblings)
        self._metrics = metrics
        self._queues = [trio.open_memory_channel[bytes](QUEUE) for _ in self._siblings]

    async def run(self) -> None:
        """Send our changes and apply the siblings' until cancelled."""
        async with trio.open_nursery() as nursery:
            for stream, (_, receive) in zip(self._siblings, self._queues, strict=True):
                nursery.start_soon(_send_loop, stream, receive)
                nursery.start_soon(self._apply_loop, stream)

    async def _publish(self, message: list[object]) -> None:
        data = msgpack.packb(message)
        for send, _ in self._queues:
            await send.send(data)

    async def _apply_loop(self, stream: trio.SocketStream) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        try:
            async for data in stream:
                unpacker.feed(data)
                self._apply(unpacker)
        except trio.BrokenResourceError:
            pass
        log.debug("a sibling worker closed its replication link")

    def _apply(self, unpacker: msgpack.Unpacker) -> None:
        """Every whole message fed so far, in order."""
        store, metrics = self._store, self._metrics
        for message in unpacker:
            if message[0] == PUT:
                _, raw, addresses, now, ttl = message
                store.put_nowait(raw, addresses, now, ttl)
            else:
                _, raw, timestamp, expires = message
                store.record_timestamp(raw, timestamp, expires)
            metrics.inc("replicated_total")

    # --- Store ----------------------------------------------------------------------

    async def put(self, device: DeviceID, addresses: list[str], now: float, ttl: float) -> None:
        self._store.put_nowait(device.raw, addresses, now, ttl)
        await self._publish([PUT, device.raw, addresses, now, ttl])

    async def get(self, device: DeviceID, now: float) -> Record | None:
        return await self._store.get(device, now)

    async def size(self, now: float) -> int:
        return await self._store.size(now)

    async def ping(self) -> None:
        pass

    async def claim_timestamp(
        self, device: DeviceID, timestamp: int, now: float, keep: float
    ) -> bool:
        if not await self._store.claim_timestamp(device, timestamp, now, keep):
            return False
        await self._publish([CLAIM, device.raw, timestamp, now + keep])
        return True

    async def expire(self, now: float) -> int:
        return await self._store.expire(now)  # each replica by the same clock

    async def aclose(self) -> None:
        await self._store.aclose()


async def _send_loop(stream: trio.SocketStream, receive: trio.MemoryReceiveChannel[bytes]) -> None:
    """Write queued messages to one sibling, joined in batches. A sibling gone (it died,
    or stops first on shutdown) is the parent's to handle: drop what is left for it."""
    broken = False
    async for first in receive:
        batch = [first]
        while len(batch) < BATCH:
            try:
                batch.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
        if broken:
            continue
        try:
            await stream.send_all(b"".join(batch))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("a sibling worker's replication link is closed")
            broken = True
