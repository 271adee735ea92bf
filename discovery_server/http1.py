"""HTTP/1.1 for the discovery server: httptools (llhttp, in C) parses, trio does the I/O.

The server answers small requests at a high rate, where the HTTP stack is most of the
cost. Measured per request on the benchmark machine: hypercorn with a bare ASGI app
0.36 ms of CPU and Starlette's routing 0.06 ms more; h11 alone 0.14 ms; httptools 4 µs.
So the discovery server speaks HTTP/1.1 itself, with httptools as the parser: one read
and one write per request on a kept-alive connection, keep-alive and pipelining, bodies
read whole (bounded) before the handler runs, and every wait bounded by a deadline:

* a fresh connection has ``head_timeout`` for its first request head, an idle one
  ``keepalive_timeout`` until the next begins (then ``head_timeout`` again);
* a body has ``body_timeout`` in total (408; a trickle resets no timer), and is refused
  as soon as it is known to exceed ``max_body`` (413); a head beyond ``max_head`` is 431;
* every write has ``send_timeout``.

On a plain TCP connection (a ``trio.SocketStream``) the reads and writes go straight to
the non-blocking socket: a read waits with ``trio.lowlevel.wait_readable`` (one
scheduling point per request), a write is tried at once and waits only if the socket
buffer is full, and the connection's one cancel scope gets a new deadline only before a
wait. ``SocketStream`` yields to the scheduler after every successful call and each
phase set a deadline: per request on the benchmark that was two scheduler passes and five
deadline changes, more than the parsing and the handler together. Other streams (TLS)
keep the stream interface.

Nothing a client sends ends the server: every error stays in its connection's task.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools
import trio

from p2psync.api.http import Limits, error_body, linger, parse_query

log = logging.getLogger("discovery_server.http")
access_log = logging.getLogger("discovery_server.access")

READ_SIZE = 64 * 1024
LINGER_MAX = 1 << 20  # bytes dropped at most while lingering before a close
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class HttpRequest:
    """One request, its body read. Header names are lower case; a repeated header's
    values are joined with ", " (RFC 9110, 5.3)."""

    method: str
    path: str
    query_string: bytes
    headers: dict[str, str]
    body: bytes
    client: str  # the peer's IP as the socket reports it
    state: Mapping[str, Any] = field(default_factory=dict)  # per connection (TLS)
    _query: dict[str, str] | None = None

    @property
    def query_params(self) -> Mapping[str, str]:
        """The query; for a repeated key the last value wins."""
        if self._query is None:
            self._query = parse_query(self.query_string)
        return self._query


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Terminating:
    """Set once the server is shutting down: idle keep-alive connections close at once,
    busy ones after their current answer."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self._idle: set[trio.CancelScope] = set()

    def set(self) -> None:
        self.event.set()
        for scope in self._idle:
            scope.cancel()

    def watch_idle(self, scope: trio.CancelScope) -> None:
        """The connection under ``scope`` waits idle: terminating cancels it (until
        ``unwatch``; a plain method pair, as this runs once per request)."""
        if self.event.is_set():
            scope.cancel()
        self._idle.add(scope)

    def unwatch(self, scope: trio.CancelScope) -> None:
        self._idle.discard(scope)


async def serve_connection(
    handler: Handler,
    limits: Limits,
    terminating: Terminating,
    stream: trio.abc.HalfCloseableStream,
    client: str,
    state: Mapping[str, Any] | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> None:
    """Answer requests on one connection until it closes, errs, times out or the server
    terminates; closes the stream. ``on_refused`` hears the reason of each request the
    connection itself refuses (413, 408, 400, 431)."""
    connection = _Connection(stream, limits, client, state or {})
    connection.on_refused = on_refused
    try:
        await connection.run(handler, terminating)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
        log.debug("connection from %s dropped: %r", client, exc)
    except OSError as exc:
        log.debug("connection from %s failed: %r", client, exc)
    except Exception:
        log.exception("connection from %s failed", client)
    finally:
        await trio.aclose_forcefully(stream)


class _Refuse(Exception):
    """Answer ``status`` with ``message`` and close the connection; ``reason`` names the
    refusal for metrics."""

    def __init__(self, status: int, reason: str, message: str, *, linger: bool = False) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.linger = status, reason, message, linger


class _Message:
    """What the parser has seen of one request."""

    __slots__ = ("url", "headers", "body", "size", "method", "version", "keep_alive")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.method = ""
        self.version = "1.1"
        self.keep_alive = True


class _Callbacks:
    """httptools' callbacks: collect messages; limits are checked after each feed (an
    exception raised in a callback would come back wrapped)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parser: httptools.HttpRequestParser | None = None
        self.current: _Message | None = None
        self.head_done = False
        self.boundary = False  # a head or a message ended during the last feed
        self.too_large = False
        self.expects_continue = False
        self.ready: list[_Message] = []

    def on_message_begin(self) -> None:
        self.current = _Message()
        self.head_done = False
        self.expects_continue = False

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.current.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        message, parser = self.current, self.parser
        assert message is not None and parser is not None
        self.head_done = True
        self.boundary = True
        message.method = parser.get_method().decode("ascii", "replace")
        message.version = parser.get_http_version()
        message.keep_alive = parser.should_keep_alive()
        declared = message.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limits.max_body:
            self.too_large = True
        self.expects_continue = message.headers.get("expect", "").lower() == "100-continue"

    def on_body(self, body: bytes) -> None:
        message = self.current
        assert message is not None
        message.size += len(body)
        if message.size > self.limits.max_body:
            self.too_large = True
        elif not self.too_large:
            message.body.append(body)

    def on_message_complete(self) -> None:
        assert self.current is not None
        if not self.too_large:
            self.ready.append(self.current)
        self.current = None
        self.head_done = False
        self.boundary = True


class _Connection:
    def __init__(
        self,
        stream: trio.abc.HalfCloseableStream,
        limits: Limits,
        client: str,
        state: Mapping[str, Any],
    ) -> None:
        self.stream = stream
        # A plain TCP connection's descriptor: read and written directly (module doc).
        self.fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self.limits = limits
        self.client = client
        self.state = state
        self.callbacks = _Callbacks(limits)
        self.parser = httptools.HttpRequestParser(self.callbacks)
        self.callbacks.parser = self.parser
        self.sent_continue = False
        self.head_fed = 0
        self.on_refused: Callable[[str], None] | None = None
        self.scope = trio.CancelScope()  # replaced by run's
        self.phase = "head"  # what the deadline is for: head, idle, body, handler
        self.deadline = math.inf  # the phase's; given to the scope before a wait

    async def run(self, handler: Handler, terminating: Terminating) -> None:
        """Serve requests under one cancel scope whose deadline follows the phase (a
        scope per wait costs more than the rest of a small request)."""
        with trio.CancelScope() as scope:
            self.scope = scope
            await self._serve(handler, terminating)
        if scope.cancelled_caught and self.phase == "body":
            refused = _Refuse(
                408,
                "body-timeout",
                f"the body did not arrive within {self.limits.body_timeout:g} s",
            )
            with trio.move_on_after(self.limits.send_timeout):
                await self._refuse(refused)
        # other deadlines (no head in time, idle too long, a stuck write) and the server's
        # shutdown of an idle connection close it quietly

    async def _serve(self, handler: Handler, terminating: Terminating) -> None:
        fresh = True
        while not terminating.event.is_set():
            try:
                message = await self._next(fresh, terminating)
            except _Refuse as refused:
                await self._refuse(refused)
                return
            if message is None:
                return
            request = self._request(message)
            logging_access = access_log.isEnabledFor(logging.DEBUG)
            started = time.perf_counter() if logging_access else 0.0
            self.phase, self.deadline = "handler", math.inf
            if self.scope.deadline != math.inf:  # the handler may wait (Redis)
                self.scope.deadline = math.inf
            response = await _respond(handler, request)
            close = not message.keep_alive or terminating.event.is_set()
            await self._send(response, message.method, close=close)
            if logging_access:
                _log_access(request, message.version, response, started)
            if close:
                return
            fresh = False

    def _phase(self, phase: str, seconds: float) -> None:
        self.phase = phase
        self.deadline = trio.current_time() + seconds

    async def _refuse(self, refused: _Refuse) -> None:
        if self.on_refused is not None:
            self.on_refused(refused.reason)
        await self._send(_error(refused.status, refused.message), "", close=True)
        if refused.linger:
            await linger(self.stream, self.limits.linger_timeout, LINGER_MAX)

    async def _next(self, fresh: bool, terminating: Terminating) -> _Message | None:
        """The next complete request; None once the client closed or the server is
        terminating while this connection was idle."""
        callbacks, limits = self.callbacks, self.limits
        if callbacks.ready:  # pipelined behind the last one
            await trio.lowlevel.checkpoint()  # no read waits for it: yield here
            return callbacks.ready.pop(0)
        self.sent_continue = False
        if fresh or callbacks.current is not None:
            self._phase("head", limits.head_timeout)
        else:
            self._phase("idle", limits.keepalive_timeout)
        while True:
            if self.phase == "idle":
                terminating.watch_idle(self.scope)
                try:
                    data = await self._receive()
                finally:
                    terminating.unwatch(self.scope)
                if data:  # a request has begun: its head gets head_timeout
                    self._phase("head", limits.head_timeout)
            else:
                data = await self._receive()
            if not data:
                if callbacks.current is not None and self.on_refused is not None:
                    self.on_refused("client-disconnect")  # left mid-request: no answer
                return None
            was_head_done = callbacks.head_done
            self._feed(data)
            if callbacks.ready:
                return callbacks.ready.pop(0)
            if callbacks.head_done and not was_head_done:
                self._phase("body", limits.body_timeout)
            if callbacks.head_done and callbacks.expects_continue and not self.sent_continue:
                self.sent_continue = True
                await self._write(CONTINUE)

    def _feed(self, data: bytes) -> None:
        callbacks = self.callbacks
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise _Refuse(400, "upgrade", "protocol upgrades are not served here") from None
        except httptools.HttpParserError as exc:
            raise _Refuse(400, "malformed-http", f"malformed HTTP request: {exc}") from None
        if callbacks.too_large:
            limit = self.limits.max_body
            raise _Refuse(413, "body-too-large", f"the body exceeds {limit} bytes", linger=True)
        # Bytes fed since a head or message last ended (the part of a chunk after such a
        # boundary is not counted: the bound is max_head plus one read).
        if callbacks.boundary:
            callbacks.boundary = False
            self.head_fed = 0
        elif callbacks.current is not None and not callbacks.head_done:
            self.head_fed += len(data)
            if self.head_fed > self.limits.max_head:
                raise _Refuse(431, "head-too-large", "the request head is too large")

    def _request(self, message: _Message) -> HttpRequest:
        url = httptools.parse_url(message.url) if message.url else None
        raw_path = url.path if url is not None and url.path else b"/"
        return HttpRequest(
            method=message.method,
            path=unquote(raw_path.decode("latin-1")),
            query_string=(url.query or b"") if url is not None else b"",
            headers=message.headers,
            body=b"".join(message.body),
            client=self.client,
            state=self.state,
        )

    async def _send(self, response: HttpResponse, method: str, *, close: bool) -> None:
        await self._write(_serialize(response, head_only=method == "HEAD", close=close))

    async def _receive(self) -> bytes:
        """The next bytes from the client (b"" at its EOF), by the phase's deadline."""
        if self.scope.deadline != self.deadline:
            self.scope.deadline = self.deadline
        if self.fd < 0:
            return bytes(await self.stream.receive_some(READ_SIZE))
        while True:
            await trio.lowlevel.wait_readable(self.fd)
            try:
                return os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"read failed: {exc}") from exc

    async def _write(self, data: bytes) -> None:
        """Write all of ``data``, waiting at most ``send_timeout`` in all. A plain socket
        is written at once; only a full socket buffer makes it wait."""
        view = memoryview(data)
        if self.fd >= 0:
            view = view[self._write_nowait(view) :]
            if not view:
                return
        deadline = self.scope.deadline
        self.scope.deadline = trio.current_time() + self.limits.send_timeout
        if self.fd < 0:
            await self.stream.send_all(data)
        else:
            while view:
                await trio.lowlevel.wait_writable(self.fd)
                view = view[self._write_nowait(view) :]
        self.scope.deadline = deadline

    def _write_nowait(self, view: memoryview) -> int:
        """Bytes of ``view`` the socket took now (0 if its buffer is full)."""
        try:
            return os.write(self.fd, view)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"write failed: {exc}") from exc


async def _respond(handler: Handler, request: HttpRequest) -> HttpResponse:
    """The handler's response; an exception it did not handle becomes a logged 500."""
    try:
        return await handler(request)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, "internal error")


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, error_body(message), {}, "application/json")


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    return line


def _serialize(response: HttpResponse, *, head_only: bool, close: bool) -> bytes:
    parts = [_status_line(response.status), b"date: ", _http_date(), b"\r\n"]
    has_body = response.status >= 200 and response.status not in (204, 304)
    if has_body:
        if response.content_type:
            parts += [b"content-type: ", response.content_type.encode("latin-1"), b"\r\n"]
        parts += [b"content-length: ", str(len(response.body)).encode(), b"\r\n"]
    for name, value in response.headers.items():
        parts += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
    if close and "connection" not in {n.lower() for n in response.headers}:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if has_body and not head_only:
        parts.append(response.body)
    return b"".join(parts)


def _log_access(request: HttpRequest, version: str, response: HttpResponse, started: float) -> None:
    if access_log.isEnabledFor(logging.DEBUG):
        target = request.path + (
            f"?{request.query_string.decode('latin-1')}" if request.query_string else ""
        )
        access_log.debug(
            '%s - "%s %s HTTP/%s" %d %d %.1fms',
            request.client,
            request.method,
            target,
            version,
            response.status,
            len(response.body),
            (time.perf_counter() - started) * 1000,
        )
