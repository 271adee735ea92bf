"""A misbehaving TCP proxy on 127.0.0.1 for putting between two nodes.

    proxy = ChaosProxy(("127.0.0.1", port), seed=7)
    url = await nursery.start(proxy.serve)          # "tcp://127.0.0.1:NNNNN"
    proxy.set_fault(Fault("flip", count=3))         # the next 3 connections get a flipped byte
    proxy.partition(); ...; proxy.heal()

Faults apply to the next ``count`` connections (each gets one), then the proxy is
clean again. A fault strikes at a random byte offset of the connection (both directions
counted together) drawn from ``at_bytes``:

* ``cut``: close both sides abruptly;
* ``flip``: XOR one byte (TLS must notice: the connection drops, data stays intact);
* ``stall``: stop forwarding for ``seconds``, then carry on;
* ``throttle``: forward at ``rate`` bytes/s for the rest of the connection.

``partition()`` closes every open connection and refuses new ones until ``heal()``.
Byte and event counters are in ``stats``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

CHUNK = 64 * 1024


@dataclass
class Fault:
    kind: str  # cut, flip, stall, throttle
    count: int = 1
    at_bytes: tuple[int, int] = (1, 256 * 1024)
    seconds: float = 1.0  # stall
    rate: int = 256 * 1024  # throttle, bytes per second


@dataclass
class ProxyStats:
    connections: int = 0
    refused: int = 0
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client
    faults: dict[str, int] = field(default_factory=dict)


class _Link:
    """One proxied connection: two pumps sharing a byte count and at most one fault."""

    def __init__(self, proxy: ChaosProxy, fault: Fault | None) -> None:
        self.proxy = proxy
        self.fault = fault
        self.strike_at = proxy.rng.randint(*fault.at_bytes) if fault else -1
        self.struck = False
        self.throttled = False
        self.total = 0
        self.scope = trio.CancelScope()

    async def pump(self, src: trio.abc.Stream, dst: trio.abc.Stream, up: bool) -> None:
        try:
            while True:
                data = await src.receive_some(CHUNK)
                if not data:  # one side closed: end the whole link, as TLS peers do
                    self.scope.cancel()
                    return
                data = await self._apply(bytearray(data))
                if data is None:  # cut
                    self.scope.cancel()
                    return
                if self.throttled:
                    await trio.sleep(len(data) / self.fault.rate)  # type: ignore[union-attr]
                await dst.send_all(bytes(data))
                self.total += len(data)
                if up:
                    self.proxy.stats.bytes_up += len(data)
                else:
                    self.proxy.stats.bytes_down += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.scope.cancel()

    async def _apply(self, data: bytearray) -> bytearray | None:
        if self.fault is None or self.struck or self.total + len(data) < self.strike_at:
            return data
        self.struck = True
        kind = self.fault.kind
        stats = self.proxy.stats
        stats.faults[kind] = stats.faults.get(kind, 0) + 1
        pos = max(0, min(len(data) - 1, self.strike_at - self.total))
        if kind == "cut":
            return None
        if kind == "flip":
            data[pos] ^= 1 << self.proxy.rng.randrange(8)
        elif kind == "stall":
            await trio.sleep(self.fault.seconds)  # the fault itself, not synchronisation
        elif kind == "throttle":
            self.throttled = True
        return data


class ChaosProxy:
    def __init__(self, target: tuple[str, int], *, seed: int = 0) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.stats = ProxyStats()
        self.partitioned = False
        self._fault: Fault | None = None
        self._left = 0
        self._links: set[_Link] = set()
        self.address = ""

    def set_fault(self, fault: Fault | None) -> None:
        self._fault = fault
        self._left = fault.count if fault else 0

    @property
    def faults_pending(self) -> int:
        return self._left

    def partition(self) -> None:
        self.partitioned = True
        for link in list(self._links):
            link.scope.cancel()

    def heal(self) -> None:
        self.partitioned = False

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.address)

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.partitioned:
            self.stats.refused += 1
            await trio.aclose_forcefully(client)
            return
        try:
            upstream = await trio.open_tcp_stream(*self.target)
        except OSError:
            self.stats.refused += 1
            await trio.aclose_forcefully(client)
            return
        fault = None
        if self._fault is not None and self._left > 0:
            self._left -= 1
            fault = self._fault
        self.stats.connections += 1
        link = _Link(self, fault)
        self._links.add(link)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(link.pump, client, upstream, True)
                    nursery.start_soon(link.pump, upstream, client, False)
        finally:
            self._links.discard(link)
            await trio.aclose_forcefully(client)
            await trio.aclose_forcefully(upstream)
