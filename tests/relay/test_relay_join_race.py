"""strelaysrv's join race, scripted: its session takes a join only while its goroutine
waits for one, so a join that lands at the wrong moment is refused ("already connected",
code 2) and that session's key is gone. The real relay does this about once in ten
sessions on a busy loopback; this relay does it on the first session, every time."""

from __future__ import annotations

from functools import partial

import trio

from p2psync.identity import generate_identity
from p2psync.net.relay import dial_through_relay, make_relay_context
from p2psync.net.tls import tls_accept
from p2psync.protocol.relay import (
    ConnectRequest,
    JoinSessionRequest,
    RelayDecoder,
    Response,
    SessionInvitation,
    encode,
    parse_relay_url,
)


async def _receive(stream: trio.abc.Stream, decoder: RelayDecoder) -> object:
    while (msg := decoder.next_message()) is None:
        decoder.feed(bytes(await stream.receive_some(4096)))
    return msg


async def test_a_dialler_whose_join_is_refused_asks_for_a_new_session() -> None:
    relay_identity, me, target = generate_identity(), generate_identity(), generate_identity()
    sessions_asked = 0
    joins: list[bytes] = []

    async def protocol_port(stream: trio.SocketStream) -> None:
        nonlocal sessions_asked
        tls = await tls_accept(stream, make_relay_context(relay_identity))
        request = await _receive(tls, RelayDecoder())
        assert isinstance(request, ConnectRequest) and request.device_id == target.device_id.raw
        sessions_asked += 1
        key = bytes([sessions_asked]) * 32
        invitation = SessionInvitation(request.device_id, key, b"", session_port, False)
        await tls.send_all(encode(invitation))
        await tls.aclose()

    async def session_port(stream: trio.SocketStream) -> None:
        join = await _receive(stream, RelayDecoder())
        assert isinstance(join, JoinSessionRequest)
        joins.append(join.key)
        if len(joins) == 1:  # the first session's join lands while the relay is busy
            await stream.send_all(encode(Response(2, "already connected")))
            await stream.aclose()
            return
        await stream.send_all(encode(Response(0, "success")) + b"relayed bytes")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, session_port, 0, host="127.0.0.1"))
        session_port = listeners[0].socket.getsockname()[1]
        listeners = await nursery.start(partial(trio.serve_tcp, protocol_port, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        url = parse_relay_url(f"relay://127.0.0.1:{port}/?id={relay_identity.device_id}")
        with trio.fail_after(20):
            stream, invitation = await dial_through_relay(
                url, target.device_id, make_relay_context(me)
            )
            assert await stream.receive_some() == b"relayed bytes"
        assert sessions_asked == 2
        assert joins == [b"\x01" * 32, b"\x02" * 32]  # the second join used the new key
        assert invitation.key == b"\x02" * 32
        await stream.aclose()
        nursery.cancel_scope.cancel()
