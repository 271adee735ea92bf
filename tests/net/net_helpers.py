"""Helpers shared by the tests in tests/net (imported by name: keep the name unique)."""

from __future__ import annotations

import trio

from p2psync.net.tls import TLSStream
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import Hello


def hello(name: str) -> Hello:
    return Hello(device_name=name, client_name="p2psync", client_version="0.1.0", timestamp=1)


def connected_pair() -> tuple[Connection, Connection]:
    """Two sans-IO protocol connections past their Hellos (ours, theirs)."""
    ours, theirs = Connection(hello("ours")), Connection(hello("theirs"))
    theirs.receive_data(ours.start())
    ours.receive_data(theirs.start())
    for conn in (ours, theirs):
        while conn.next_event() is not NEED_DATA:
            pass
    return ours, theirs


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
