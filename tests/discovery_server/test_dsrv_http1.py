"""discovery_server.http1 over an in-memory stream and over a socket pair (the direct
socket path): keep-alive and pipelining, HTTP/1.0, HEAD, 100-continue, the limits (413,
431, 408, 400), large answers written in parts, and shutdown of idle connections.
Timeouts run on trio's autojump clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from discovery_server.http1 import (
    Handler,
    HttpRequest,
    HttpResponse,
    Limits,
    Terminating,
    serve_connection,
)

LIMITS = Limits(max_body=100, max_head=512, head_timeout=5, keepalive_timeout=7, body_timeout=3)


async def echo(request: HttpRequest) -> HttpResponse:
    text = f"{request.method} {request.path} {dict(request.query_params)} {request.body!r}"
    return HttpResponse(
        200, text.encode(), {"X-Seen": request.headers.get("x-a", "")}, "text/plain"
    )


BIG = 8 << 20  # more than the socket buffers hold: written in parts


async def big(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, b"x" * BIG)


class Client:
    """The client end of one served connection, and what the server reported refusing.
    ``kind`` (set per test by the ``transport`` fixture): "memory" streams, or a
    "socket" pair, which the server reads and writes directly."""

    kind = "memory"

    def __init__(
        self,
        nursery: trio.Nursery,
        terminating: Terminating | None = None,
        handler: Handler = echo,
        limits: Limits = LIMITS,
    ) -> None:
        server_end: trio.abc.HalfCloseableStream
        if self.kind == "socket":
            a, b = trio.socket.socketpair()
            self.stream, server_end = trio.SocketStream(a), trio.SocketStream(b)
        else:
            self.stream, server_end = trio.testing.memory_stream_pair()
        self.refused: list[str] = []
        self.closed = trio.Event()
        self.buffer = b""

        async def serve() -> None:
            await serve_connection(
                handler,
                LIMITS,
                terminating or Terminating(),
                server_end,
                "192.0.2.1",
                on_refused=self.refused.append,
            )
            self.closed.set()

        nursery.start_soon(serve)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """The next whole response (status, lower-case headers, body; none for HEAD)."""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self._more()
        top, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
        length = 0 if head else int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += await self._more()
        self.buffer = rest[length:]
        return status, headers, rest[:length]

    async def at_eof(self) -> bool:
        return self.buffer == b"" and await self.stream.receive_some() == b""

    async def _more(self) -> bytes:
        data = await self.stream.receive_some()
        assert data, "the server closed the connection"
        return bytes(data)


@pytest.fixture(autouse=True, params=["memory", "socket"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(Client, "kind", request.param)
    return str(request.param)


async def test_keep_alive_and_pipelined_requests_answered_in_order() -> None:
    async with trio.open_nursery() as nursery:
        client = Client(nursery)
        await client.send(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
        status, headers, body = await client.response()
        assert status == 200 and body == b"GET /a {'x': '1'} b''"
        assert headers["x-seen"] == "1, 2" and "connection" not in headers
        await client.send(
            b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c%20d HTTP/1.1\r\n\r\n"
        )
        assert (await client.response())[2] == b"POST /b {} b'abc'"
        assert (await client.response())[2] == b"GET /c d {} b''"
        await client.stream.send_eof()
        await client.closed.wait()


async def test_http10_and_connection_close_end_the_connection() -> None:
    for request in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"):
        async with trio.open_nursery() as nursery:
            client = Client(nursery)
            await client.send(request)
            status, headers, _ = await client.response()
            assert status == 200 and headers["connection"] == "close"
            assert await client.at_eof()


async def test_head_has_the_length_but_no_body() -> None:
    async with trio.open_nursery() as nursery:
        client = Client(nursery)
        await client.send(b"HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n")
        status, headers, _ = await client.response(head=True)
        assert status == 200 and int(headers["content-length"]) > 0
        assert (await client.response())[2] == b"GET /y {} b''"  # right after the head
        nursery.cancel_scope.cancel()


async def test_expect_100_continue_gets_an_interim_answer() -> None:
    async with trio.open_nursery() as nursery:
        client = Client(nursery)
        await client.send(b"POST /p HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert (await client.response())[0] == 100
        await client.send(b"ok")
        assert (await client.response())[2] == b"POST /p {} b'ok'"
        nursery.cancel_scope.cancel()


async def test_a_declared_or_streamed_body_over_the_limit_is_413() -> None:
    for request in (
        b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + b"x" * 101 + b"\r\n",
    ):
        async with trio.open_nursery() as nursery:
            client = Client(nursery)
            await client.send(request)
            status, headers, body = await client.response()
            assert status == 413 and b"100 bytes" in body and headers["connection"] == "close"
            await client.stream.send_eof()
            await client.closed.wait()
            assert client.refused == ["body-too-large"]


async def test_an_oversized_head_is_431_and_garbage_is_400() -> None:
    cases = [
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 600 + b"\r\n", 431, "head-too-large"),
        (b"NONSENSE\r\n\r\n", 400, "malformed-http"),
        (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 400, "upgrade"),
    ]
    for request, expected, reason in cases:
        async with trio.open_nursery() as nursery:
            client = Client(nursery)
            await client.send(request)
            assert (await client.response())[0] == expected
            await client.closed.wait()
            assert client.refused == [reason]


async def test_a_slow_body_is_408_after_the_body_timeout(autojump_clock: object) -> None:
    async with trio.open_nursery() as nursery:
        client = Client(nursery)
        await client.send(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        started = trio.current_time()
        assert (await client.response())[0] == 408
        assert 3 <= trio.current_time() - started < 4
        await client.closed.wait()
        assert client.refused == ["body-timeout"]


async def test_silent_and_idle_connections_are_closed_quietly(autojump_clock: object) -> None:
    async with trio.open_nursery() as nursery:
        silent = Client(nursery)
        started = trio.current_time()
        await silent.closed.wait()
        assert 5 <= trio.current_time() - started < 6  # head_timeout
        idle = Client(nursery)
        await idle.send(b"GET / HTTP/1.1\r\n\r\n")
        await idle.response()
        started = trio.current_time()
        await idle.closed.wait()
        assert 7 <= trio.current_time() - started < 8  # keepalive_timeout
        assert silent.refused == idle.refused == []


async def test_terminating_closes_idle_connections_and_ends_busy_ones_after_answering() -> None:
    terminating = Terminating()
    async with trio.open_nursery() as nursery:
        idle = Client(nursery, terminating)
        await idle.send(b"GET / HTTP/1.1\r\n\r\n")
        await idle.response()
        await trio.testing.wait_all_tasks_blocked()
        terminating.set()
        await idle.closed.wait()
        nursery.cancel_scope.cancel()
    terminating = Terminating()
    async with trio.open_nursery() as nursery:
        busy = Client(nursery, terminating)
        await busy.send(b"GET / HTTP/1.1\r\n")  # a request has begun
        await trio.testing.wait_all_tasks_blocked()
        terminating.set()
        await busy.send(b"\r\n")
        status, headers, _ = await busy.response()
        assert status == 200 and headers["connection"] == "close"
        await busy.closed.wait()


async def test_a_large_answer_is_written_in_parts_as_the_client_reads() -> None:
    async with trio.open_nursery() as nursery:
        client = Client(nursery, handler=big)
        await client.send(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        for _ in range(2):
            status, _, body = await client.response()
            assert status == 200 and body == b"x" * BIG
        nursery.cancel_scope.cancel()


# only over a socket: a memory stream takes any amount of data at once
@pytest.mark.parametrize("transport", ["socket"], indirect=True)
async def test_a_client_that_does_not_read_is_dropped_after_the_send_timeout(
    autojump_clock: object, transport: str
) -> None:
    async with trio.open_nursery() as nursery:
        client = Client(nursery, handler=big)
        await client.send(b"GET / HTTP/1.1\r\n\r\n")
        started = trio.current_time()
        await client.closed.wait()
        assert LIMITS.send_timeout <= trio.current_time() - started < LIMITS.send_timeout + 1
