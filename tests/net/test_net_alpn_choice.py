"""One listener speaks both protocols: the server picks p2psync/1 when the client offers
it, Syncthing's bep/1.0 when that is all the client offers."""

from __future__ import annotations

import pytest
import trio
from net_helpers import handshake_pair, tcp_transport_pair

from p2psync.identity import Identity
from p2psync.net.tls import TLSStream, make_tls_context


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([b"bep/1.0"], b"bep/1.0"),  # a stock Syncthing dialling in
        ([b"bep/1.0", b"p2psync/1"], b"p2psync/1"),  # p2psync/1 preferred when both
        (None, b"p2psync/1"),  # our own dialler offers both, p2psync/1 first
    ],
)
async def test_the_server_picks_the_protocol_both_speak(
    alice: Identity, bob: Identity, offered: list[bytes] | None, chosen: bytes
) -> None:
    client_ctx = make_tls_context(alice)
    if offered is not None:
        client_ctx.set_alpn_protos(offered)
    client_raw, server_raw = await tcp_transport_pair()
    client = TLSStream(client_raw, client_ctx, server_side=False)
    server = TLSStream(server_raw, make_tls_context(bob), server_side=True)
    with trio.fail_after(10):
        await handshake_pair(client, server)
    assert client.alpn_protocol() == chosen and server.alpn_protocol() == chosen
    await trio.aclose_forcefully(client)
    await trio.aclose_forcefully(server)
