"""A minimal HTTP/1.1 server for the control API: h11 for the protocol, trio for the I/O.

Just what the API needs, so the idle daemon does not carry an ASGI stack (Starlette pulls
in anyio and asyncio, hypercorn h2 and wsproto). The app side mirrors the small part of
Starlette the handlers used: ``Request``, ``Response``, ``HTTPException``, ``Route`` with
``{name}`` segments, exception handlers by class, plus a guard run before routing.

The server side (``serve``) gives each connection one task in a nursery it owns. Request
bodies are read whole (bounded) before the handler runs; heads, bodies and sends all
have deadlines, so a silent or slow client cannot hold a task forever; connections are
capped in total and per remote address (``accept.serve_capped``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11
import trio

from .accept import ConnectionCaps, ConnectionGate, serve_capped, total_cap_below_fd_limit

log = logging.getLogger("p2psync.api.http")

READ_SIZE = 64 * 1024
LINGER_MAX = 8 << 20  # bytes dropped at most while lingering before a close


# ---- the app side ------------------------------------------------------------------


class HTTPException(Exception):
    """Raise in a handler to answer ``status_code``; ``detail`` defaults to the reason."""

    def __init__(
        self, status_code: int, detail: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.detail = detail if detail is not None else HTTPStatus(status_code).phrase
        self.headers = dict(headers or {})
        super().__init__(status_code, self.detail)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


def parse_query(query: bytes) -> dict[str, str]:
    """A URL query as a dict; for a repeated key the last value wins."""
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))


class Request:
    """One request, its body already read. Header names are lower case (h11's doing)."""

    def __init__(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> None:
        self.method = method
        raw_path, _, self.query_string = target.partition(b"?")
        # h11 only lets visible ASCII through in the target; match on the decoded path
        self.path = unquote(raw_path.decode("ascii"))
        self.headers = headers
        self.path_params: dict[str, str] = {}
        self._body = body
        self._query: dict[str, str] | None = None

    @property
    def query_params(self) -> Mapping[str, str]:
        """The query string; for a repeated key the last value wins (as in Starlette)."""
        if self._query is None:
            self._query = parse_query(self.query_string)
        return self._query

    async def body(self) -> bytes:
        return self._body


class Response:
    """A whole response. Subclasses set ``media_type`` and override ``render``."""

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.headers: dict[str, str] = dict(headers or {})
        self.body = self.render(content)

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        return str(content).encode(self.charset)

    @property
    def has_body(self) -> bool:
        return self.status_code >= 200 and self.status_code not in (204, 304)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers to send: ours plus content-type and content-length."""
        given = {k.lower(): v for k, v in self.headers.items()}
        given.pop("content-length", None)
        if self.media_type is not None and "content-type" not in given:
            media = self.media_type
            if media.startswith("text/") and "charset=" not in media:
                media += f"; charset={self.charset}"
            given["content-type"] = media
        if self.has_body:
            given["content-length"] = str(len(self.body))
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in given.items()]


def json_error(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"error": message}``: the server's own answers (400, 413, 500, ...)."""
    return Response(error_body(message), status_code, headers, media_type="application/json")


def error_body(message: str) -> bytes:
    """The JSON body of every error this project's HTTP servers answer themselves."""
    return json.dumps({"error": message}).encode()


async def linger(stream: trio.abc.HalfCloseableStream, seconds: float, max_bytes: int) -> None:
    """Half-close, then read and drop what the client still sends for a moment (at most
    ``max_bytes``), so a client busy sending its body reads our answer instead of a
    connection reset."""
    with trio.move_on_after(seconds):
        try:
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        dropped = 0
        while dropped < max_bytes:
            data = await stream.receive_some(READ_SIZE)
            if not data:
                return
            dropped += len(data)


Endpoint = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
Guard = Callable[[Request], Response | None]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def compile_path(path: str) -> re.Pattern[str]:
    """``/a/{id}/b`` → a pattern where ``{id}`` is one non-empty segment without '/';
    ``{rest:path}`` is the non-empty rest of the path, slashes included."""
    parts: list[str] = []
    end = 0
    for m in _PARAM.finditer(path):
        parts.append(re.escape(path[end : m.start()]))
        parts.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})")
        end = m.end()
    parts.append(re.escape(path[end:]))
    return re.compile("".join(parts))


class Route:
    """``endpoint`` for ``methods`` (default GET) at ``path``; GET implies HEAD."""

    def __init__(self, path: str, endpoint: Endpoint, methods: Iterable[str] | None = None) -> None:
        self.path = path
        self.endpoint = endpoint
        self.methods = {m.upper() for m in (methods or ("GET",))}
        if "GET" in self.methods:
            self.methods.add("HEAD")
        self._pattern = compile_path(path)

    def match(self, path: str) -> dict[str, str] | None:
        m = self._pattern.fullmatch(path)
        return m.groupdict() if m else None


class App:
    """Routes, exception handlers (the most specific class wins) and a guard.

    ``guard`` runs before routing, so it covers unknown routes too; it returns a response
    to refuse the request or None to let it through.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        exception_handlers: Mapping[type[Exception], ExceptionHandler] | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.routes = list(routes)
        self.exception_handlers = dict(exception_handlers or {})
        self.guard = guard

    async def handle(self, request: Request) -> Response:
        """The response for ``request``; exceptions without a handler propagate."""
        try:
            return await self._dispatch(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is not None:
                return await handler(request, exc)
            if isinstance(exc, HTTPException):
                return Response(exc.detail, exc.status_code, exc.headers, media_type="text/plain")
            raise

    async def _dispatch(self, request: Request) -> Response:
        if self.guard is not None:
            refused = self.guard(request)
            if refused is not None:
                return refused
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(request.path)
            if params is None:
                continue
            if request.method in route.methods:
                request.path_params = params
                return await route.endpoint(request)
            allowed |= route.methods
        if allowed:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        raise HTTPException(404)

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                return handler
        return None


# ---- the server side ---------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Bounds on what one connection may cost.

    A fresh connection has ``head_timeout`` to deliver its first request head; between
    requests a connection may idle ``keepalive_timeout``, and once the next request has
    begun its head again has ``head_timeout``. A body has ``body_timeout`` and every
    write ``send_timeout``. ``max_head`` is h11's limit on an incomplete event. At most
    ``max_connections`` are open (accepts pause at the cap, lowered to stay under the
    file-handle limit) and ``max_connections_per_address`` from one address (closed at
    once beyond it).
    """

    max_body: int = 1 << 20
    max_head: int = 16 * 1024
    head_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    linger_timeout: float = 2.0
    max_connections: int = 64
    max_connections_per_address: int = 32

    def caps(self) -> ConnectionCaps:
        total = total_cap_below_fd_limit(self.max_connections)
        return ConnectionCaps(total, min(total, self.max_connections_per_address))


def bind_text(host: str, port: int) -> str:
    """The address as "host:port", with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(
    app: App,
    host: str,
    port: int,
    *,
    limits: Limits | None = None,
    gate: ConnectionGate | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; reports the bound "host:port".

    ``gate`` (default: one made from ``limits``) counts the open connections.

    An empty host means every interface. If the host resolves to several addresses and
    the port is 0, each would get its own port: only the first is served, so the
    reported address is the whole truth.
    """
    limits = limits or Limits()
    gate = gate or ConnectionGate(limits.caps())
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    try:
        served = listeners[:1] if port == 0 else listeners
        for extra in listeners[len(served) :]:
            await trio.aclose_forcefully(extra)
        sockname = served[0].socket.getsockname()
        task_status.started(bind_text(sockname[0], sockname[1]))
        async with trio.open_nursery() as connections:
            await serve_capped(
                partial(_serve_connection, app, limits),
                served,
                gate,
                handler_nursery=connections,
                logger=log,
            )
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def _serve_connection(app: App, limits: Limits, stream: trio.SocketStream) -> None:
    """Answer requests on one connection until it closes, errs or times out.

    Nothing a client does may end the server: every error stays in this task.
    """
    try:
        await _Connection(stream, limits).run(app)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
        log.debug("API connection dropped: %r", exc)
    except (h11.ProtocolError, OSError) as exc:
        log.debug("API connection failed: %r", exc)
    except Exception:
        log.exception("API connection failed")
    finally:
        await trio.aclose_forcefully(stream)


class _Connection:
    def __init__(self, stream: trio.SocketStream, limits: Limits) -> None:
        self.stream = stream
        self.limits = limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)

    async def run(self, app: App) -> None:
        fresh = True
        while True:
            request = await self._read_request(fresh)
            if request is None:
                return
            await self._send_response(request.method, await _respond(app, request))
            if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                return  # MUST_CLOSE: the client asked to close, or is HTTP/1.0
            self.conn.start_next_cycle()
            fresh = False

    async def _read_request(self, fresh: bool) -> Request | None:
        """The next request with its body, or None once the connection is to be closed
        (an error answer, if one is due, already sent)."""
        try:
            head = await self._read_head(fresh)
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, f"malformed HTTP request: {exc}")
            return None
        if head is None:
            return None
        method = head.method.decode("ascii")
        try:
            body = await self._read_body(head)
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, f"malformed HTTP request: {exc}", method)
            return None
        except _BodyTooLarge:
            limit = self.limits.max_body
            await self._refuse(413, f"request body too large (limit {limit} bytes)", method)
            await linger(self.stream, self.limits.linger_timeout, LINGER_MAX)
            return None
        except trio.TooSlowError:
            await self._refuse(408, "request body not received in time", method)
            return None
        return Request(method, head.target, list(head.headers), body)

    async def _read_head(self, fresh: bool) -> h11.Request | None:
        """The next request head; None if the client closed or stayed silent too long."""
        limits = self.limits
        wait = limits.head_timeout if fresh else limits.keepalive_timeout
        with trio.move_on_after(wait) as scope:
            while True:
                event = self.conn.next_event()
                if event is not h11.NEED_DATA:
                    return event if isinstance(event, h11.Request) else None
                data = await self.stream.receive_some(READ_SIZE)
                if data and not fresh:  # the idle wait is over: a request has begun
                    fresh = True
                    scope.deadline = trio.current_time() + limits.head_timeout
                self.conn.receive_data(data)
        return None

    async def _read_body(self, head: h11.Request) -> bytes:
        declared = _content_length(head.headers)
        if declared is not None and declared > self.limits.max_body:
            raise _BodyTooLarge
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        with trio.fail_after(self.limits.body_timeout):
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    self.conn.receive_data(await self.stream.receive_some(READ_SIZE))
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > self.limits.max_body:
                        raise _BodyTooLarge
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return b"".join(chunks)
                else:  # h11 raises on an early close; nothing else can come here
                    raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")

    async def _refuse(self, status: int, message: str, method: str | None = None) -> None:
        """Answer an error and mark the connection for closing, if a response can still
        be sent (h11 allows one before the request is complete)."""
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response = json_error(status, message, {"Connection": "close"})
            await self._send_response(method, response)

    async def _send_response(self, method: str | None, response: Response) -> None:
        headers = response.raw_headers()
        headers.append((b"date", formatdate(usegmt=True).encode()))
        reason = _reason(response.status_code)
        await self._send(
            h11.Response(status_code=response.status_code, headers=headers, reason=reason)
        )
        if response.body and response.has_body and method != "HEAD":
            await self._send(h11.Data(data=response.body))
        await self._send(h11.EndOfMessage())

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            with trio.fail_after(self.limits.send_timeout):
                await self.stream.send_all(data)


class _BodyTooLarge(Exception):
    pass


async def _respond(app: App, request: Request) -> Response:
    """The app's response; an exception no handler took becomes a logged 500."""
    try:
        return await app.handle(request)
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return json_error(500, "internal error")


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 has checked that it is a number
    return None


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
