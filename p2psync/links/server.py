"""HTTP/1.1 over TLS for the link listener: h11 + trio, with streamed response bodies.

Like the control API's server (``api/http.py``, whose ``Request``/``Response`` it reuses)
but with a TLS handshake, the client's address on each request, and ``StreamResponse``:
a body produced chunk by chunk. If producing it fails half-way (the file changed), the
connection is closed without ending the message, so the client sees a truncated
download and never a mix of two versions.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from functools import partial
from http import HTTPStatus

import h11
import trio

from ..api.accept import ConnectionCaps, ConnectionGate, serve_capped
from ..api.http import Request, Response, bind_text

log = logging.getLogger("p2psync.links.http")

READ_SIZE = 64 * 1024


class LinkRequest(Request):
    """A request with the client's address ("ip" without port)."""

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        client: str,
    ) -> None:
        super().__init__(method, target, headers, body)
        self.client = client
        self.raw_target = target

    def header(self, name: str) -> str | None:
        key = name.lower().encode("latin-1")
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return None


class StreamResponse(Response):
    """A response whose body comes from ``chunks`` (``length`` bytes, or chunked)."""

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        length: int | None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(None, status_code, headers, media_type)
        self.chunks = chunks
        self.length = length

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [h for h in super().raw_headers() if h[0] != b"content-length"]
        if self.length is not None:
            headers.append((b"content-length", str(self.length).encode()))
        return headers


Handler = Callable[[LinkRequest], Awaitable[Response]]


@dataclass(frozen=True)
class LinkLimits:
    max_body: int = 4096  # the password form
    max_head: int = 16 * 1024
    handshake_timeout: float = 15.0
    head_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    send_timeout: float = 60.0
    max_connections: int = 64
    max_connections_per_address: int = 16


async def serve_tls(
    handler: Handler,
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    limits: LinkLimits | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` over HTTPS on ``host:port`` until cancelled; reports "host:port"."""
    limits = limits or LinkLimits()
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    try:
        served = listeners[:1] if port == 0 else listeners
        for extra in listeners[len(served) :]:
            await trio.aclose_forcefully(extra)
        sockname = served[0].socket.getsockname()
        gate = ConnectionGate(
            ConnectionCaps(limits.max_connections, limits.max_connections_per_address)
        )
        task_status.started(bind_text(sockname[0], sockname[1]))
        async with trio.open_nursery() as connections:
            await serve_capped(
                partial(_serve_connection, handler, context, limits),
                served,
                gate,
                handler_nursery=connections,
                logger=log,
            )
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def _serve_connection(
    handler: Handler, context: ssl.SSLContext, limits: LinkLimits, stream: trio.SocketStream
) -> None:
    """One connection: every error stays in this task and closes only it."""
    try:
        client = str(stream.socket.getpeername()[0])
    except OSError:
        await trio.aclose_forcefully(stream)
        return
    tls = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
    try:
        with trio.fail_after(limits.handshake_timeout):
            await tls.do_handshake()
        await _Connection(tls, limits, client).run(handler)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
        log.debug("link connection from %s dropped: %r", client, exc)
    except (h11.ProtocolError, OSError, ssl.SSLError) as exc:
        log.debug("link connection from %s failed: %r", client, exc)
    except Exception:
        log.exception("link connection from %s failed", client)
    finally:
        await trio.aclose_forcefully(tls)


class _Connection:
    def __init__(self, stream: trio.SSLStream[trio.SocketStream], limits: LinkLimits, client: str):
        self.stream = stream
        self.limits = limits
        self.client = client
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)

    async def run(self, handler: Handler) -> None:
        fresh = True
        while True:
            request = await self._read_request(fresh)
            if request is None:
                return
            try:
                response = await handler(request)
            except Exception:
                log.exception("link %s %s failed", request.method, request.path)
                response = Response("internal error", 500, media_type="text/plain")
            if not await self._send_response(request.method, response):
                return  # the body failed half-way: close without ending the message
            if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                return
            self.conn.start_next_cycle()
            fresh = False

    async def _read_request(self, fresh: bool) -> LinkRequest | None:
        wait = self.limits.head_timeout if fresh else self.limits.keepalive_timeout
        chunks: list[bytes] = []
        size = 0
        head: h11.Request | None = None
        try:
            with trio.move_on_after(wait):
                while True:
                    event = self.conn.next_event()
                    if event is h11.NEED_DATA:
                        self.conn.receive_data(bytes(await self.stream.receive_some(READ_SIZE)))
                    elif isinstance(event, h11.Request):
                        head = event
                        if self.conn.they_are_waiting_for_100_continue:
                            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
                    elif isinstance(event, h11.Data):
                        size += len(event.data)
                        if size > self.limits.max_body:
                            await self._refuse(413, "request body too large")
                            return None
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage) and head is not None:
                        return LinkRequest(
                            head.method.decode("ascii"),
                            head.target,
                            list(head.headers),
                            b"".join(chunks),
                            self.client,
                        )
                    else:
                        return None  # ConnectionClosed
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, "malformed HTTP request")
        return None

    async def _refuse(self, status: int, message: str) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response = Response(message, status, {"Connection": "close"}, media_type="text/plain")
            await self._send_response(None, response)

    async def _send_response(self, method: str | None, response: Response) -> bool:
        """Send ``response``; False if its streamed body failed half-way."""
        headers = response.raw_headers()
        headers.append((b"date", formatdate(usegmt=True).encode()))
        try:
            reason = HTTPStatus(response.status_code).phrase.encode("ascii")
        except ValueError:
            reason = b""
        await self._send(
            h11.Response(status_code=response.status_code, headers=headers, reason=reason)
        )
        body = response.has_body and method != "HEAD"
        if isinstance(response, StreamResponse):
            chunks = response.chunks
            try:
                if body:
                    async for data in chunks:
                        if data:
                            await self._send(h11.Data(data=data))
            except Exception as exc:
                log.info("link response to %s aborted: %s", self.client, exc)
                return False
            finally:
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
        elif response.body and body:
            await self._send(h11.Data(data=response.body))
        await self._send(h11.EndOfMessage())
        return True

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            with trio.fail_after(self.limits.send_timeout):
                await self.stream.send_all(data)
