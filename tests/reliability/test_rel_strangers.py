"""205 strangers with fresh identities connecting over real TLS do not push a real
device that asked first off the node's 200-entry pending list."""

from __future__ import annotations

import time

import trio
from nodes import make_home

from p2psync.endpoints import parse_endpoint
from p2psync.identity import Identity, generate_identity
from p2psync.net.tls import tls_connect
from p2psync.pending import MAX_DEVICES_PER_HOST, MAX_ENTRIES
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import ConnectionClosed, Hello
from p2psync.wiring import Node, serve_node

STRANGERS = MAX_ENTRIES + 5


async def knock(node: Node, identity: Identity, name: str) -> None:
    """Connect as ``identity`` (TLS, then Hello) and read until the node hangs up."""
    endpoint = parse_endpoint(node.connections.listen_addresses[0])
    tcp = await trio.open_tcp_stream(endpoint.host, endpoint.port)
    stream = await tls_connect(tcp, identity)
    try:
        conn = Connection(
            Hello(
                device_name=name,
                client_name="p2psync",
                client_version="0.0-test",
                timestamp=time.time_ns(),
            )
        )
        await stream.send_all(conn.start())
        with trio.fail_after(10):
            while True:
                ev = conn.next_event()
                if isinstance(ev, ConnectionClosed):
                    return
                if ev is NEED_DATA:
                    try:
                        data = await stream.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                    conn.receive_data(data)
    finally:
        await trio.aclose_forcefully(stream)


async def test_strangers_flood_does_not_evict_a_real_pending_device(tmp_path, outcomes) -> None:
    real = generate_identity()
    strangers = [generate_identity() for _ in range(STRANGERS)]
    async with trio.open_nursery() as nursery:
        node = await nursery.start(serve_node, make_home(tmp_path, "b"))
        await knock(node, real, "laptop")
        assert [d.name for d in node.pending.devices()] == ["laptop"]
        for i, identity in enumerate(strangers[:MAX_ENTRIES]):
            await knock(node, identity, f"stranger{i}")
        assert str(real.device_id) in {d.device_id for d in node.pending.devices()}, (
            "the real device was evicted"
        )
        await knock(node, real, "laptop")  # it keeps asking while it waits
        for i, identity in enumerate(strangers[MAX_ENTRIES:]):
            await knock(node, identity, f"late stranger{i}")
        pending = {d.device_id: d for d in node.pending.devices()}
        assert str(real.device_id) in pending, "the real device was evicted"
        assert pending[str(real.device_id)].first_seen < pending[str(real.device_id)].time
        # every knock came from 127.0.0.1: that host holds its share, not the whole list
        assert len(pending) == MAX_DEVICES_PER_HOST
        nursery.cancel_scope.cancel()
    outcomes.record(
        "peer",
        f"{STRANGERS} strangers (fresh identities, real TLS) after a real pending device",
        "real device kept listed",
        trials=STRANGERS,
        detail=f"{len(pending)} pending entries from the flooding host (cap {MAX_DEVICES_PER_HOST})",
    )
