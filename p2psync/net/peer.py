"""One authenticated connection to a device: one reader task, a locked writer, request
matching with timeouts, byte budgets both ways, keep-alives and a receive timeout.

The sans-IO ``protocol.connection.Connection`` does all parsing; this adapter only
moves bytes and routes messages to a ``PeerHandler`` (the sync model).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ..identity import DeviceID
from ..protocol.connection import NEED_DATA
from ..protocol.limits import MAX_OUTSTANDING_REQUESTS
from ..protocol.messages import (
    Close,
    ConnectionClosed,
    ErrorCode,
    Message,
    Ping,
    Request,
    Response,
)
from .budget import ByteBudget

log = logging.getLogger("p2psync.net.peer")

RECEIVE_CHUNK = 256 * 1024
PING_INTERVAL = 90.0
RECEIVE_TIMEOUT = 300.0
REQUEST_TIMEOUT = 120.0
# Bytes of block data in flight per connection and direction. Each byte in flight is held
# once or twice (read, encrypted: a Response is written from the block's own bytes), so
# this bounds a daemon's memory; 16 MiB still keeps a 1 Gbit/s link with 100 ms of
# latency full.
DEFAULT_BUDGET = 16 * 1024 * 1024
# Block data we read for a peer ahead of the socket: requests beyond it wait before their
# read. The incoming budget lets a peer have 16 MiB of requests outstanding; served all at
# once, their data and its encoded copy would sit in memory until the writer got to them.
SERVE_AHEAD = 4 * 1024 * 1024
# Requests already buffered together are served as one group (one hand-off, answers
# written together): up to this many, and this many bytes.
SERVE_GROUP = 64
SERVE_GROUP_BYTES = 1024 * 1024
# What a peer's Request costs the budgets at least, whatever its size: an empty request
# still takes memory (its Request, its share of a serving task, its Response: about
# 0.5 KiB). Without a floor, zero-size requests never filled a byte budget and were read
# until the 4,096-request cap cut the connection; with it the incoming budget stops the
# reader first (see ``request_cost_floor``).
REQUEST_MIN_COST = 1024


# What ``request_many`` asks for: (name, offset, size, SHA-256) of each block.
WantedBlock = tuple[str, int, int, bytes]


class RequestFailed(Exception):
    """A block request was answered with an error code, timed out or lost its connection."""

    def __init__(self, code: ErrorCode | None, message: str) -> None:
        super().__init__(message)
        self.code = code


class PeerHandler(Protocol):
    """What the sync model provides to a connection."""

    async def handle_message(self, peer: PeerConnection, message: Message) -> None:
        """ClusterConfig, Index, IndexUpdate, DownloadProgress — in arrival order."""

    async def handle_requests(
        self, peer: PeerConnection, requests: Sequence[Request]
    ) -> Sequence[Response]:
        """Serve block requests that arrived together: one Response each, in order."""


@dataclass
class TransferStats:
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    connected_at: float = field(default=0.0)


class PeerConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        connection,  # protocol.connection.Connection (post-Hello)
        device_id: DeviceID,
        address: str,
        *,
        outgoing_budget: int = DEFAULT_BUDGET,
        incoming_budget: int = DEFAULT_BUDGET,
        request_timeout: float = REQUEST_TIMEOUT,
        ping_interval: float = PING_INTERVAL,
        receive_timeout: float = RECEIVE_TIMEOUT,
    ) -> None:
        self.stream = stream
        self.protocol = connection
        self.device_id = device_id
        self.address = address
        self.stats = TransferStats(connected_at=trio.current_time())
        self.outgoing = ByteBudget(outgoing_budget)
        self.incoming = ByteBudget(incoming_budget)
        self.serving = ByteBudget(min(SERVE_AHEAD, incoming_budget))
        self.request_cost_floor = request_cost_floor(incoming_budget)
        self.request_timeout = request_timeout
        self.ping_interval = ping_interval
        self.receive_timeout = receive_timeout
        self._send_lock = trio.StrictFIFOLock()
        # Encoded, not yet written (see send): a frame's buffers, a block's data among
        # them as the very object the handler returned (Connection.send_buffers).
        self._outbox: list[bytes] = []
        self._writer_running = False
        self._wake_writer = trio.lowlevel.ParkingLot()
        self._written = trio.lowlevel.ParkingLot()
        self._write_error: Exception | None = None
        self._queued = 0  # messages ever queued
        self._sent = 0  # messages ever written
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._carried: Any = None  # an event read past a group of requests (as next_event)
        self._last_send = trio.current_time()
        self._closed = trio.Event()
        self._closing = False
        self.close_reason = ""

    # ---- sending -------------------------------------------------------------------
    async def send(self, message: Message) -> None:
        """Queue ``message`` and return once it is written. Messages queued together go
        out in one TLS write. While the connection runs, a writer task of its own does the
        writing, so a caller cancelled while it waits never cuts a write short (which would
        break the TLS stream for every other message in it)."""
        await self.send_many([message])

    async def send_many(self, messages: Sequence[Message]) -> None:
        """``send`` for several messages, in order, with one wait."""
        if self._closing and not all(isinstance(m, Close) for m in messages):
            raise trio.ClosedResourceError(f"connection to {self.device_id.short_str()} is closed")
        for message in messages:
            self._outbox.extend(self.protocol.send_buffers(message))
        self._queued += len(messages)
        mine = self._queued
        if self._writer_running:
            self._wake_writer.unpark_all()
            while self._sent < mine and self._writer_running:
                await self._written.park()
            if self._sent >= mine:
                return
            if self._write_error is not None:
                raise trio.BrokenResourceError("the connection's writer failed") from (
                    self._write_error
                )
        await self._write_queued(mine)

    async def _write_queued(self, upto_message: int | None = None) -> None:
        """Write everything queued (unless message ``upto_message`` is already out)."""
        async with self._send_lock:
            if upto_message is not None and self._sent >= upto_message:
                return
            chunks, self._outbox = self._outbox, []
            upto = self._queued
            for data in _coalesced(chunks):
                await self.stream.send_all(data)
                self.stats.bytes_out += len(data)
            self.stats.messages_out += upto - self._sent
            self._sent = upto
            self._last_send = trio.current_time()
            self._written.unpark_all()

    async def _writer(self, cancel: trio.CancelScope) -> None:
        self._writer_running = True
        try:
            while True:
                while not self._outbox:
                    await self._wake_writer.park()
                await self._write_queued()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._write_error = exc
            self.close_reason = self.close_reason or f"connection lost: {exc}"
            cancel.cancel()  # the reader's turn to close the connection
        finally:
            self._writer_running = False
            self._written.unpark_all()

    async def request(
        self,
        folder: str,
        name: str,
        offset: int,
        size: int,
        hash: bytes,
        *,
        from_temporary: bool = False,
    ) -> bytes:
        """Fetch one block; waits for outgoing budget first, so a slow peer gets fewer
        bytes in flight."""
        if self.closed:
            raise RequestFailed(None, f"connection to {self.device_id.short_str()} is closed")
        await self.outgoing.acquire(size)
        pending = _Pending(None, None, 0)
        request_id = self._register(pending)
        try:
            await self.send(
                Request(
                    id=request_id,
                    folder=folder,
                    name=name,
                    offset=offset,
                    size=size,
                    hash=hash,
                    from_temporary=from_temporary,
                )
            )
            with trio.move_on_after(self.request_timeout) as scope:
                await pending.done.wait()
            outcome = _outcome(pending.response, name, offset, scope.cancelled_caught)
            if isinstance(outcome, RequestFailed):
                raise outcome
            return outcome
        finally:
            self._pending.pop(request_id, None)
            self.outgoing.release(size)

    async def request_many(
        self, folder: str, wanted: Sequence[WantedBlock]
    ) -> list[bytes | RequestFailed]:
        """Fetch several blocks with one wait: every request is queued for the writer
        before any answer is awaited, and only the last answer wakes this task (a batch of
        small files costs one task here, not one per block). Each request's outgoing
        budget is returned as its answer arrives, so requesters waiting for budget never
        hold each other up. The result for each block is its data or the
        ``RequestFailed`` saying why it is missing; one deadline covers them all."""
        group = _Group()
        queued: list[tuple[int, _Pending]] = []
        try:
            with trio.move_on_after(self.request_timeout) as scope:
                for name, offset, size, hash in wanted:
                    await self.outgoing.acquire(size)
                    if self.closed or not self._writer_running:
                        self.outgoing.release(size)
                        break
                    pending = _Pending(group, self.outgoing, size)
                    request_id = self._register(pending)
                    queued.append((request_id, pending))
                    self._enqueue(Request(request_id, folder, name, offset, size, hash))
                group.expect(len(queued))
                await group.done.wait()
            results: list[bytes | RequestFailed] = []
            for i, (name, offset, _, _) in enumerate(wanted):
                response = queued[i][1].response if i < len(queued) else None
                results.append(_outcome(response, name, offset, scope.cancelled_caught))
            return results
        finally:
            for request_id, pending in queued:
                self._pending.pop(request_id, None)
                pending.give_back()

    def _register(self, pending: _Pending) -> int:
        """A new request id, under which ``pending`` receives its answer."""
        request_id = next(self._ids) & 0x7FFFFFFF
        self._pending[request_id] = pending
        return request_id

    def _enqueue(self, message: Message) -> None:
        """Queue ``message`` for the writer task without waiting for it to be written."""
        self._outbox.extend(self.protocol.send_buffers(message))
        self._queued += 1
        self._wake_writer.unpark_all()

    async def close(self, reason: str) -> None:
        """Send Close (best effort) and close the stream."""
        if self._closing:
            return
        self._closing = True
        self.close_reason = self.close_reason or reason
        with trio.move_on_after(2) as scope:
            scope.shield = True
            try:
                await self.send(Close(reason=reason))
            except (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
                pass
            await trio.aclose_forcefully(self.stream)
        self._mark_closed()

    def _mark_closed(self) -> None:
        self._closed.set()
        for pending in self._pending.values():
            pending.wake()

    @property
    def closed(self) -> bool:
        return self._closing

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # ---- the reader --------------------------------------------------------------
    async def run(
        self, handler: PeerHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Read until the peer closes, errs, or goes silent; then close. Never raises for
        peer misbehaviour or a lost connection: it is logged and ends this connection only."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, nursery.cancel_scope)
            nursery.start_soon(self._keepalive)
            task_status.started()
            try:
                await self._read_loop(handler, nursery)
            except RemoteProtocolError as exc:
                self.close_reason = f"protocol error: {exc}"
                log.warning("closing connection to %s: %s", self.device_id.short_str(), exc)
            except LocalProtocolError as exc:
                self.close_reason = f"internal protocol error: {exc}"
                log.error("bug: closing connection to %s: %s", self.device_id.short_str(), exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.close_reason = self.close_reason or f"connection lost: {exc}"
                log.info(
                    "connection to %s lost: %s",
                    self.device_id.short_str(),
                    exc or type(exc).__name__,
                )
            finally:
                nursery.cancel_scope.cancel()
                await self.close(self.close_reason or "closing")

    async def _read_loop(self, handler: PeerHandler, nursery: trio.Nursery) -> None:
        # Messages that arrived together with the peer's Hello are already buffered in
        # the protocol: handle them before waiting for more bytes.
        while await self._handle_buffered(handler, nursery):
            with trio.move_on_after(self.receive_timeout) as scope:
                data = await self.stream.receive_some(RECEIVE_CHUNK)
            if scope.cancelled_caught:
                self.close_reason = f"no data for {self.receive_timeout:.0f} s"
                log.warning(
                    "closing connection to %s: %s", self.device_id.short_str(), self.close_reason
                )
                return
            self.stats.bytes_in += len(data)
            self.protocol.receive_data(data)

    async def _handle_buffered(self, handler: PeerHandler, nursery: trio.Nursery) -> bool:
        """Handle every complete message in the buffer; False once the peer is done."""
        while True:
            if self._carried is not None:
                event, self._carried = self._carried, None
            else:
                event = self.protocol.next_event()
            if event is NEED_DATA:
                return True
            if isinstance(event, ConnectionClosed):
                self.close_reason = self.close_reason or "peer closed the connection"
                return False
            self.stats.messages_in += 1
            if isinstance(event, Close):
                self.close_reason = f"peer closed: {event.reason}"
                log.info("%s closed the connection: %s", self.device_id.short_str(), event.reason)
                return False
            if isinstance(event, Ping):
                continue
            if isinstance(event, Response):
                pending = self._pending.get(event.id)
                if pending is None:
                    log.debug(
                        "response for unknown request %d from %s",
                        event.id,
                        self.device_id.short_str(),
                    )
                    continue
                pending.resolve(event)
                continue
            if isinstance(event, Request):
                group = self._buffered_requests(event)
                # Backpressure: stop reading until the requests fit in the budget.
                await self.incoming.acquire(self._cost(group))
                nursery.start_soon(self._serve, handler, group)
                continue
            await handler.handle_message(self, event)

    def _buffered_requests(self, first: Request) -> list[Request]:
        """``first`` and the requests right behind it in the buffer, up to SERVE_GROUP
        requests and SERVE_GROUP_BYTES (served with one hand-off and answered together).
        The event that ends the group is kept for ``_handle_buffered``."""
        group = [first]
        size = first.size
        while len(group) < SERVE_GROUP and size < SERVE_GROUP_BYTES:
            event = self.protocol.next_event()
            if not isinstance(event, Request) or size + event.size > SERVE_GROUP_BYTES:
                self._carried = event
                break
            self.stats.messages_in += 1
            group.append(event)
            size += event.size
        return group

    def _cost(self, requests: list[Request]) -> int:
        """What ``requests`` count against the incoming and serving budgets."""
        floor = self.request_cost_floor
        return sum(max(r.size, floor) for r in requests)

    async def _serve(self, handler: PeerHandler, requests: list[Request]) -> None:
        size = self._cost(requests)
        try:
            await self.serving.acquire(size)
            try:
                try:
                    responses = list(await handler.handle_requests(self, requests))
                    if len(responses) != len(requests):
                        raise LocalProtocolError("a handler answered the wrong number of requests")
                except Exception:  # a bug in serving must not kill the connection silently
                    log.exception(
                        "serving %s to %s failed",
                        ", ".join(r.name for r in requests),
                        self.device_id.short_str(),
                    )
                    responses = [Response(id=r.id, code=ErrorCode.GENERIC) for r in requests]
                await self.send_many(responses)  # returns once written: then its data is gone
            finally:
                self.serving.release(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.incoming.release(size)

    async def _keepalive(self) -> None:
        while True:
            await trio.sleep(max(0.0, self._last_send + self.ping_interval - trio.current_time()))
            if trio.current_time() - self._last_send >= self.ping_interval:
                try:
                    await self.send(Ping())
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return


def request_cost_floor(incoming_budget: int) -> int:
    """REQUEST_MIN_COST, or more if that is what it takes for ``incoming_budget`` to fill
    up (and stop the reader) before the peer reaches MAX_OUTSTANDING_REQUESTS, counting
    the group of up to SERVE_GROUP requests read before the budget is asked."""
    fills_at = MAX_OUTSTANDING_REQUESTS - 2 * SERVE_GROUP
    return max(REQUEST_MIN_COST, -(-incoming_budget // fills_at))


COALESCE_MAX = 64 * 1024  # small messages are joined up to this size; big ones go alone


def _coalesced(chunks: list[bytes]) -> Iterator[bytes]:
    """The chunks as few writes: runs of small ones joined (a copy, so only small ones).
    A big chunk goes alone: a block's data is written from the object it was read into
    (the few bytes of frame around it join the small runs before and after it)."""
    run: list[bytes] = []
    size = 0
    for chunk in chunks:
        if len(chunk) >= COALESCE_MAX:
            if run:
                yield run[0] if len(run) == 1 else b"".join(run)
                run, size = [], 0
            yield chunk
            continue
        run.append(chunk)
        size += len(chunk)
        if size >= COALESCE_MAX:
            yield b"".join(run)
            run, size = [], 0
    if run:
        yield run[0] if len(run) == 1 else b"".join(run)


class _Pending:
    """One request's answer. Alone (``request``) it has an event of its own; in a group
    (``request_many``) it returns its outgoing budget on arrival and counts down the
    group's."""

    __slots__ = ("budget", "done", "group", "response", "size")

    def __init__(self, group: _Group | None, budget: ByteBudget | None, size: int) -> None:
        self.group = group
        self.done = trio.Event() if group is None else group.done
        self.response: Response | None = None
        self.budget = budget
        self.size = size

    def resolve(self, response: Response) -> None:
        if self.response is not None:
            return  # a duplicate answer
        self.response = response
        self.give_back()
        if self.group is None:
            self.done.set()
        else:
            self.group.arrived()

    def give_back(self) -> None:
        budget, self.budget = self.budget, None
        if budget is not None:
            budget.release(self.size)

    def wake(self) -> None:
        self.done.set()


class _Group:
    """The answers ``request_many`` waits for: done once all it queued have arrived (or
    the connection closed)."""

    __slots__ = ("arrived_count", "done", "expected")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.arrived_count = 0
        self.expected: int | None = None  # known once every request is queued

    def arrived(self) -> None:
        self.arrived_count += 1
        if self.expected is not None and self.arrived_count >= self.expected:
            self.done.set()

    def expect(self, count: int) -> None:
        self.expected = count
        if self.arrived_count >= count:
            self.done.set()


def _outcome(
    response: Response | None, name: str, offset: int, timed_out: bool
) -> bytes | RequestFailed:
    """What ``request_many`` reports for one block."""
    if response is None:
        if timed_out:
            return RequestFailed(None, f"request for {name}@{offset} timed out")
        return RequestFailed(None, f"connection lost while requesting {name}@{offset}")
    if response.code != ErrorCode.NO_ERROR:
        return RequestFailed(
            response.code, f"peer answered {response.code.name} for {name}@{offset}"
        )
    return response.data
