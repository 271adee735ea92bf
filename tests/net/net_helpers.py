"""Helpers shared by the tests in tests/net (imported by name: keep the name unique)."""

from __future__ import annotations

import trio

from p2psync.net.tls import TLSStream


async def handshake_pair(client: TLSStream, server: TLSStream) -> tuple[TLSStream, TLSStream]:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.do_handshake)
            nursery.start_soon(server.do_handshake)
    return client, server


async def tcp_transport_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected (client, server) pair of real loopback TCP streams."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            server = await listeners[0].accept()
    finally:
        for listener in listeners:
            await listener.aclose()
    return client, server
