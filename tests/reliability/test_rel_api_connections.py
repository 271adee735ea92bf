"""The control API's HTTP server against hostile clients over real loopback sockets: heads and
bodies trickled a byte at a time (the deadlines are totals, not per read), and many
connections from one address (a cap per address and in total).

Other source addresses are 127.0.0.2, 127.0.0.3...: all of 127.0.0.0/8 is loopback.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import httpx
import trio
import trio.testing

from p2psync.api.accept import ConnectionCaps, ConnectionGate
from p2psync.api.http import App, Limits, Request, Response, Route, serve

WITHIN = 10.0
# timeouts no test reaches unless the server fails to apply a shorter one
SLOW = Limits(max_body=1024, max_connections=64, max_connections_per_address=16)


def hello_app() -> App:
    async def hello(request: Request) -> Response:
        return Response("hello", media_type="text/plain")

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    return App([Route("/hello", hello), Route("/echo", echo, methods=["POST"])])


@asynccontextmanager
async def running(limits: Limits, gate: ConnectionGate | None = None) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            partial(serve, hello_app(), "127.0.0.1", 0, limits=limits, gate=gate)
        )
        try:
            yield address
        finally:
            nursery.cancel_scope.cancel()


async def connect(address: str, source: str = "127.0.0.1") -> trio.SocketStream:
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host, int(port), local_address=source)


async def trickle_until_closed(stream: trio.SocketStream, data: bytes, every: float) -> float:
    """Send ``data`` a byte at a time until the server closes; the seconds it took."""
    start = trio.current_time()
    with trio.fail_after(WITHIN):
        for byte in data:
            try:
                await stream.send_all(bytes([byte]))
            except trio.BrokenResourceError:
                break
            answered = False
            with trio.move_on_after(every):  # the trickle's pace; anything back ends it
                try:
                    await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    pass
                answered = True
            if answered:
                break
        else:
            raise AssertionError("the server took the whole trickle")
    return trio.current_time() - start


async def wait_closed(stream: trio.SocketStream, within: float = WITHIN) -> bytes:
    chunks = []
    with trio.fail_after(within):
        try:
            while data := await stream.receive_some(65536):
                chunks.append(data)
        except trio.BrokenResourceError:
            pass
    return b"".join(chunks)


async def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_head_deadline(outcomes) -> None:
    limits = replace(SLOW, head_timeout=1.0)
    async with running(limits) as address:
        stream = await connect(address)
        head = b"GET /hello HTTP/1.1\r\n" + b"X-Slow: a\r\n" * 200
        took = await trickle_until_closed(stream, head, every=0.05)
        assert took < 1.0 + 3.0  # 4,400 bytes at 20 a second would take 220 s
    outcomes.record(
        "api",
        "request head trickled 20 bytes/s (head timeout 1 s)",
        "closed at the deadline",
        detail=f"closed after {took:.1f} s",
    )


async def test_a_body_trickled_a_byte_at_a_time_gets_408_at_the_body_deadline(outcomes) -> None:
    limits = replace(SLOW, body_timeout=1.0)
    async with running(limits) as address:
        stream = await connect(address)
        await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
        start = trio.current_time()
        got = b""
        with trio.fail_after(WITHIN):
            while not got:
                await stream.send_all(b"x")
                with trio.move_on_after(0.05):
                    got = await stream.receive_some(65536)
        assert got.startswith(b"HTTP/1.1 408 ")
        took = trio.current_time() - start
        assert took < 1.0 + 3.0
    outcomes.record(
        "api",
        "request body trickled 20 bytes/s (body timeout 1 s)",
        "refused (408)",
        detail=f"408 after {took:.1f} s",
    )


async def test_connections_beyond_the_cap_per_address_are_closed_at_once(outcomes) -> None:
    gate = ConnectionGate(ConnectionCaps(total=64, per_address=4))
    async with running(SLOW, gate) as address:
        held = [await connect(address, "127.0.0.2") for _ in range(4)]
        extra = [await connect(address, "127.0.0.2") for _ in range(6)]
        for stream in extra:  # closed without an answer, long before any timeout (30 s)
            assert await wait_closed(stream, within=5.0) == b""
        assert gate.by_address == {"127.0.0.2": 4} and gate.refused == 6
        # another address is served as usual meanwhile
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as client:
            assert (await client.get("/hello")).text == "hello"
        for stream in held:
            await stream.aclose()
    outcomes.record(
        "api",
        "10 silent connections from one address (cap 4 per address)",
        "6 closed at once, another address served",
    )


async def test_at_the_total_cap_accepts_wait_until_a_connection_closes(outcomes) -> None:
    gate = ConnectionGate(ConnectionCaps(total=3, per_address=2))
    async with running(SLOW, gate) as address:
        held = [
            await connect(address, "127.0.0.2"),
            await connect(address, "127.0.0.2"),
            await connect(address, "127.0.0.3"),
        ]
        with trio.fail_after(WITHIN):
            while gate.statistics()["open"] < 3:
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        waiting = await connect(address, "127.0.0.4")  # in the kernel's backlog
        await waiting.send_all(b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        with trio.move_on_after(0.3):  # not served while the cap is reached
            answer = await waiting.receive_some(65536)
            raise AssertionError(f"served beyond the cap: {answer!r}")
        await held[0].aclose()
        answer = await wait_closed(waiting)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
        for stream in held[1:]:
            await stream.aclose()
    outcomes.record(
        "api",
        "connections up to the total cap (3), then one more",
        "waits in the backlog, served when a slot frees",
    )


# A server whose connection cap lies above its file-handle limit, so accept(2) itself
# fails with EMFILE while silent clients hold every handle (until the head timeout).
EMFILE_SERVER = """
import logging, sys
from functools import partial
import trio
from p2psync.api.accept import ConnectionCaps, ConnectionGate
from p2psync.api.http import App, Limits, Response, Route, serve

async def hello(request):
    return Response("hello", media_type="text/plain")

async def main():
    gate = ConnectionGate(ConnectionCaps(total=1000))
    limits = Limits(head_timeout=1.0)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            partial(serve, App([Route("/hello", hello)]), "127.0.0.1", 0, limits=limits, gate=gate)
        )
        print(address, flush=True)

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
trio.run(main)
"""


def test_accept_failing_with_emfile_logs_one_warning_and_recovers(tmp_path, outcomes) -> None:
    log = tmp_path / "server.log"

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", EMFILE_SERVER],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            preexec_fn=limit_files,
        )
    held: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        host, _, port = proc.stdout.readline().strip().rpartition(":")
        for _ in range(100):  # silent: each holds a handle until its head timeout (1 s)
            sock = socket.create_connection((host, int(port)), timeout=WITHIN)
            held.append(sock)
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=WITHIN) as http:
            assert http.get("/hello").text == "hello"  # served once handles free up
    finally:
        for sock in held:
            sock.close()
        proc.kill()
        proc.wait()
    lines = log.read_text().splitlines()
    warnings = [line for line in lines if "accept failed: Too many open files" in line]
    assert 1 <= len(warnings) <= 2 and not any("Traceback" in line for line in lines), lines
    outcomes.record(
        "api",
        "accept(2) fails with EMFILE (64 handles, 100 silent clients)",
        "one warning, served once handles free up",
        detail=f"{len(lines)} log lines, {len(warnings)} warning, no traceback",
    )
