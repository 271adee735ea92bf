"""The API's own HTTP server (p2psync/api/http.py) over real sockets: routing, framing,
limits, timeouts, keep-alive and shutdown. Most tests serve a small app with shortened
timeouts; a few check the real API's answers."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import h11
import httpx
import pytest
import trio
from api_helpers import api_node

from p2psync.api.http import App, HTTPException, Limits, Request, Response, Route, serve
from p2psync.api.parsing import MAX_BODY

SMALL = Limits(max_body=1024, max_head=2048)  # the default timeouts: never hit in a test
FAST = replace(SMALL, head_timeout=0.5, keepalive_timeout=0.5, body_timeout=0.5)
WITHIN = 10.0  # deadline for anything the server should do (far above FAST's timeouts)


class Probe:
    """What the parking handler saw, so tests wait on events instead of sleeping."""

    def __init__(self) -> None:
        self.parked = trio.Event()
        self.release = trio.Event()
        self.cancelled = False


def json_response(content: object, status_code: int = 200) -> Response:
    return Response(json.dumps(content), status_code, media_type="application/json")


def make_app(probe: Probe | None = None, guard=None) -> App:
    probe = probe or Probe()

    async def hello(request: Request) -> Response:
        return Response("hello", media_type="text/plain")

    async def item(request: Request) -> Response:
        return json_response({"id": request.path_params["id"], "query": dict(request.query_params)})

    async def delete_item(request: Request) -> Response:
        return json_response({"deleted": request.path_params["id"]})

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    async def fail(request: Request) -> Response:
        kind = request.path_params["kind"]
        raise {"key": KeyError, "index": IndexError, "runtime": RuntimeError}[kind](kind)

    async def teapot(request: Request) -> Response:
        raise HTTPException(418, "short and stout")

    async def park(request: Request) -> Response:
        probe.parked.set()
        try:
            await probe.release.wait()
        except BaseException:
            probe.cancelled = True
            raise
        return json_response({"released": True})

    async def on_lookup(request: Request, exc: Exception) -> Response:
        return json_response({"handler": "lookup", "error": str(exc)}, 400)

    async def on_key(request: Request, exc: Exception) -> Response:
        return json_response({"handler": "key", "error": str(exc)}, 404)

    routes = [
        Route("/hello", hello),
        Route("/items/{id}", item),
        Route("/items/{id}", delete_item, methods=["DELETE"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/fail/{kind}", fail),
        Route("/teapot", teapot),
        Route("/park", park),
    ]
    handlers = {LookupError: on_lookup, KeyError: on_key}
    return App(routes, exception_handlers=handlers, guard=guard)  # type: ignore[arg-type]


@asynccontextmanager
async def running(app: App, limits: Limits = SMALL, host: str = "127.0.0.1") -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        address = await nursery.start(partial(serve, app, host, 0, limits=limits))
        try:
            yield address
        finally:
            nursery.cancel_scope.cancel()


async def connect(address: str) -> trio.SocketStream:
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host.strip("[]"), int(port))


async def read_to_eof(stream: trio.SocketStream, within: float = WITHIN) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    with trio.fail_after(within):
        while data := await stream.receive_some(65536):
            chunks.append(data)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one raw response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


class Client:
    """An h11 client on one connection, to see exactly what goes over the wire."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> tuple[h11.Response, bytes]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        all_headers = [("host", "127.0.0.1"), *headers, ("content-length", str(len(body)))]
        data = self.conn.send(h11.Request(method=method, target=target, headers=all_headers))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        return await self.response()

    async def response(self) -> tuple[h11.Response, bytes]:
        response, body = None, []
        with trio.fail_after(WITHIN):
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    self.conn.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert response is not None
                    return response, b"".join(body)


def header(response: h11.Response, name: str) -> str | None:
    found = [v for k, v in response.headers if k == name.lower().encode()]
    return found[0].decode() if found else None


# ---- routing ---------------------------------------------------------------------------


async def test_unknown_route_is_404_and_wrong_method_is_405_with_allow() -> None:
    async with running(make_app()) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            assert (await c.get("/nope")).status_code == 404
            assert (await c.get("/hello/")).status_code == 404  # no slash redirects
            r = await c.put("/items/x")
            assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, HEAD"
            assert (await c.get("/echo")).headers["allow"] == "POST"
            assert (await c.delete("/items/x")).json() == {"deleted": "x"}


async def test_path_parameters_match_the_percent_decoded_path_and_queries_keep_the_last() -> None:
    async with running(make_app()) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            r = await c.get("/items/caf%C3%A9%20x", params=[("a", "1"), ("a", "2"), ("b", "")])
            assert r.json() == {"id": "café x", "query": {"a": "2", "b": ""}}
            # %2F decodes to '/', and a parameter is one segment: no match (as in Starlette)
            assert (await c.get("/items/a%2Fb")).status_code == 404
            assert (await c.get("/items/")).status_code == 404


async def test_exception_handlers_most_specific_class_wins_and_the_rest_is_500() -> None:
    async with running(make_app()) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            r = await c.get("/fail/key")
            assert r.status_code == 404 and r.json()["handler"] == "key"
            r = await c.get("/fail/index")
            assert r.status_code == 400 and r.json()["handler"] == "lookup"
            r = await c.get("/fail/runtime")  # no handler: logged, a bare 500, server lives on
            assert r.status_code == 500 and r.json() == {"error": "internal error"}
            r = await c.get("/teapot")  # HTTPException without a handler: its detail as text
            assert r.status_code == 418 and r.text == "short and stout"
            assert (await c.get("/hello")).text == "hello"


async def test_the_guard_runs_before_routing_so_unknown_routes_are_guarded() -> None:
    def guard(request: Request) -> Response | None:
        if (b"x-ok", b"yes") in request.headers:
            return None
        return json_response({"error": "no"}, 401)

    async with running(make_app(guard=guard)) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            for method, url in (("GET", "/hello"), ("GET", "/nope"), ("PUT", "/items/x")):
                assert (await c.request(method, url)).status_code == 401, url
            assert (await c.get("/nope", headers={"X-OK": "yes"})).status_code == 404
            assert (await c.get("/hello", headers={"X-OK": "yes"})).text == "hello"


# ---- framing and keep-alive ---------------------------------------------------------------


async def test_keep_alive_serves_several_requests_on_one_connection_and_head_has_no_body() -> None:
    async with running(make_app()) as address:
        stream = await connect(address)
        client = Client(stream)
        response, body = await client.request("GET", "/hello")
        assert response.status_code == 200 and body == b"hello"
        assert header(response, "content-type") == "text/plain; charset=utf-8"
        assert header(response, "content-length") == "5" and header(response, "date")
        # HEAD: the GET's headers, no body (h11 would choke on the next response otherwise)
        response, body = await client.request("HEAD", "/hello")
        assert response.status_code == 200 and body == b""
        assert header(response, "content-length") == "5"
        response, body = await client.request("POST", "/echo", body=b"ping")
        assert response.status_code == 200 and body == b"ping"
        response, body = await client.request("GET", "/items/7")
        assert json.loads(body)["id"] == "7"
        await stream.aclose()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running(make_app()) as address:
        stream = await connect(address)
        await stream.send_all(
            b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /items/b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        raw = await read_to_eof(stream)
        first, second = raw.split(b"HTTP/1.1 ")[1:]
        assert first.startswith(b"200 ") and first.endswith(b"\r\n\r\nhello")
        assert second.startswith(b"200 ") and b'"id": "b"' in second


async def test_expect_100_continue_gets_an_interim_response() -> None:
    async with running(make_app()) as address:
        stream = await connect(address)
        conn = h11.Connection(h11.CLIENT)
        headers = [("host", "a"), ("content-length", "3"), ("expect", "100-continue")]
        await stream.send_all(
            conn.send(h11.Request(method="POST", target="/echo", headers=headers))
        )
        with trio.fail_after(WITHIN):
            while (event := conn.next_event()) is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
        assert isinstance(event, h11.InformationalResponse) and event.status_code == 100
        await stream.send_all(conn.send(h11.Data(data=b"abc")) + conn.send(h11.EndOfMessage()))
        client = Client(stream)
        client.conn = conn
        response, body = await client.response()
        assert response.status_code == 200 and body == b"abc"


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
        b"GET /hello HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
    ],
)
async def test_malformed_requests_get_400_and_the_connection_closes(raw: bytes) -> None:
    async with running(make_app()) as address:
        stream = await connect(address)
        await stream.send_all(raw)
        status, headers, body = parse(await read_to_eof(stream))
        assert status == 400 and headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"].startswith("malformed HTTP request")
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            assert (await c.get("/hello")).status_code == 200  # the server lives on


async def test_an_oversized_head_gets_431() -> None:
    async with running(make_app()) as address:
        stream = await connect(address)
        await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 4096)
        status, _, _ = parse(await read_to_eof(stream))
        assert status == 431


# ---- bodies ---------------------------------------------------------------------------------


async def test_bodies_over_the_limit_get_413_with_a_json_error() -> None:
    async with running(make_app()) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            assert (await c.post("/echo", content=b"x" * 1024)).content == b"x" * 1024
            r = await c.post("/echo", content=b"x" * 1025)  # declared too large
            assert r.status_code == 413 and "too large" in r.json()["error"]

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b"y" * 400

            r = await c.post("/echo", content=chunks())  # chunked: found too large on the way
            assert r.status_code == 413 and "too large" in r.json()["error"]
            assert (await c.post("/echo", content=b"ok")).content == b"ok"


async def test_a_client_still_sending_a_refused_body_reads_the_413_not_a_reset() -> None:
    async with running(make_app()) as address:
        stream = await connect(address)
        size = 512 * 1024
        head = f"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n".encode()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, head + b"z" * size)
            raw = await read_to_eof(stream)  # the server lingers: no RST, so no lost answer
        status, headers, body = parse(raw)
        assert status == 413 and headers["connection"] == "close" and json.loads(body)["error"]


async def test_a_body_that_stalls_gets_408() -> None:
    async with running(make_app(), FAST) as address:
        stream = await connect(address)
        await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        status, headers, body = parse(await read_to_eof(stream))
        assert status == 408 and headers["connection"] == "close" and json.loads(body)["error"]


# ---- timeouts, broken clients, shutdown --------------------------------------------------------


async def test_silent_and_slow_clients_are_dropped_without_blocking_others() -> None:
    async with running(make_app(), FAST) as address:
        idle = await connect(address)
        assert (await Client(idle).request("GET", "/hello"))[1] == b"hello"
        silent = await connect(address)
        slow = await connect(address)
        await slow.send_all(b"GET /hello HTTP/1.1\r\n")  # a head that never completes
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            for _ in range(3):  # served while the others hold their connections
                assert (await c.get("/hello")).text == "hello"
        # each is closed by the server (no answer due) once its timeout has passed
        assert await read_to_eof(silent) == b""
        assert await read_to_eof(slow) == b""
        assert await read_to_eof(idle) == b""  # an idle keep-alive connection


async def test_a_client_that_goes_away_mid_request_does_not_hurt_the_server() -> None:
    probe = Probe()
    async with running(make_app(probe)) as address:
        gone = await connect(address)
        await gone.send_all(b"GET /park HTTP/1.1\r\nHost: a\r\n\r\n")
        with trio.fail_after(WITHIN):
            await probe.parked.wait()
        await gone.aclose()
        probe.release.set()  # the answer goes to a closed socket
        half = await connect(address)
        await half.send_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab")
        await half.aclose()
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            assert (await c.get("/hello")).text == "hello"


async def test_cancellation_shuts_the_server_down_with_its_connections() -> None:
    probe = Probe()
    with trio.fail_after(WITHIN):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(
                partial(serve, make_app(probe), "127.0.0.1", 0, limits=Limits())
            )
            parked = await connect(address)
            await parked.send_all(b"GET /park HTTP/1.1\r\nHost: a\r\n\r\n")
            idle = await connect(address)
            await probe.parked.wait()
            nursery.cancel_scope.cancel()
        # the nursery is done: serve returned with every connection task
    assert probe.cancelled
    assert await read_to_eof(parked) == b"" and await read_to_eof(idle) == b""
    with pytest.raises(OSError):
        await connect(address)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_an_ipv6_literal_host_is_served_and_reported_in_brackets() -> None:
    async with running(make_app(), host="::1") as address:
        assert address.startswith("[::1]:")
        async with httpx.AsyncClient(base_url=f"http://{address}") as c:
            assert (await c.get("/hello")).text == "hello"


# ---- the real API ---------------------------------------------------------------------------


async def test_real_api_413_405_and_head(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        r = await a.client.post("/api/folders", content=b"x" * (MAX_BODY + 1))
        assert r.status_code == 413 and "too large" in r.json()["error"]
        r = await a.client.put("/api/system")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert r.json() == {"error": "Method Not Allowed"}
        r = await a.client.get("/api/nope")
        assert r.status_code == 404 and r.json() == {"error": "Not Found"}
        get, head = (
            await a.client.get("/api/openapi.json"),
            await a.client.head("/api/openapi.json"),
        )
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"] != "0"
        assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
