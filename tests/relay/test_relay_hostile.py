"""A hostile relay: floods of invitations and garbage cannot hold or crash the client."""

from __future__ import annotations

from functools import partial

import trio

from p2psync.identity import generate_identity
from p2psync.net.relay import MAX_JOINING, RelayMember, make_relay_context
from p2psync.net.tls import tls_accept
from p2psync.protocol.relay import (
    JoinRelayRequest,
    Ping,
    Pong,
    RelayDecoder,
    Response,
    SessionInvitation,
    encode,
    parse_relay_url,
)

FLOOD = 200


async def _receive(stream: trio.abc.Stream, decoder: RelayDecoder) -> object:
    while (msg := decoder.next_message()) is None:
        decoder.feed(bytes(await stream.receive_some(4096)))
    return msg


async def test_an_invitation_flood_is_capped_and_the_relay_link_stays_up() -> None:
    relay_identity, me = generate_identity(), generate_identity()
    held: list[trio.SocketStream] = []
    pong = trio.Event()

    async def black_hole(stream: trio.SocketStream) -> None:  # a session port that never answers
        held.append(stream)
        await trio.sleep_forever()

    async def fake_relay(stream: trio.SocketStream) -> None:
        tls = await tls_accept(stream, make_relay_context(relay_identity))
        decoder = RelayDecoder()
        assert isinstance(await _receive(tls, decoder), JoinRelayRequest)
        await tls.send_all(encode(Response(0, "success")))
        for i in range(FLOOD):
            invitation = SessionInvitation(
                bytes([i % 256]) * 32, i.to_bytes(32, "big"), bytes([127, 0, 0, 1]), hole_port, True
            )
            await tls.send_all(encode(invitation))
        await tls.send_all(encode(Ping()))
        if isinstance(await _receive(tls, decoder), Pong):
            pong.set()
        await trio.sleep_forever()

    async def on_session(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
        raise AssertionError("no session can be joined at a black hole")

    async with trio.open_nursery() as nursery:
        holes = await nursery.start(partial(trio.serve_tcp, black_hole, 0, host="127.0.0.1"))
        hole_port = holes[0].socket.getsockname()[1]
        relays = await nursery.start(partial(trio.serve_tcp, fake_relay, 0, host="127.0.0.1"))
        port = relays[0].socket.getsockname()[1]
        url = parse_relay_url(f"relay://127.0.0.1:{port}/?id={relay_identity.device_id}")
        member = RelayMember(url, make_relay_context(me), on_session, nursery)
        nursery.start_soon(member.run)
        with trio.fail_after(20):
            await pong.wait()  # the link answered a ping right after the flood
        assert member.status.joined
        assert member.joining == MAX_JOINING
        assert member.dropped_invitations == FLOOD - MAX_JOINING
        with trio.fail_after(10):
            while len(held) < MAX_JOINING:  # noqa: ASYNC110 (polls the black hole)
                await trio.sleep(0.01)
        assert len(held) == MAX_JOINING  # never more session connections than the cap
        nursery.cancel_scope.cancel()


async def test_garbage_from_the_relay_ends_the_link_and_it_rejoins() -> None:
    relay_identity, me = generate_identity(), generate_identity()
    joins = 0

    async def garbage_relay(stream: trio.SocketStream) -> None:
        nonlocal joins
        tls = await tls_accept(stream, make_relay_context(relay_identity))
        assert isinstance(await _receive(tls, RelayDecoder()), JoinRelayRequest)
        joins += 1
        await tls.send_all(encode(Response(0, "success")) + b"\xde\xad\xbe\xef" * 3)
        await trio.sleep_forever()

    async def on_session(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        relays = await nursery.start(partial(trio.serve_tcp, garbage_relay, 0, host="127.0.0.1"))
        port = relays[0].socket.getsockname()[1]
        url = parse_relay_url(f"relay://127.0.0.1:{port}/?id={relay_identity.device_id}")
        member = RelayMember(url, make_relay_context(me), on_session, nursery, backoff=(0.05, 0.1))
        nursery.start_soon(member.run)
        with trio.fail_after(20):
            while joins < 3:  # noqa: ASYNC110 (polls the fake relay's counter)
                await trio.sleep(0.01)
        assert "bad relay magic" in member.status.last_error
        nursery.cancel_scope.cancel()


async def test_an_unexpected_error_is_reported_and_the_member_keeps_trying() -> None:
    relay_identity, me = generate_identity(), generate_identity()
    joins = 0

    async def polite_relay(stream: trio.SocketStream) -> None:
        nonlocal joins
        tls = await tls_accept(stream, make_relay_context(relay_identity))
        assert isinstance(await _receive(tls, RelayDecoder()), JoinRelayRequest)
        joins += 1
        await tls.send_all(encode(Response(0, "success")))
        await trio.sleep_forever()

    calls = 0

    def buggy_on_change() -> None:  # stands in for a bug anywhere in the join path
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")

    async def on_session(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        relays = await nursery.start(partial(trio.serve_tcp, polite_relay, 0, host="127.0.0.1"))
        port = relays[0].socket.getsockname()[1]
        url = parse_relay_url(f"relay://127.0.0.1:{port}/?id={relay_identity.device_id}")
        member = RelayMember(
            url,
            make_relay_context(me),
            on_session,
            nursery,
            on_change=buggy_on_change,
            backoff=(0.05, 0.1),
        )
        nursery.start_soon(member.run)
        with trio.fail_after(20):
            while not (joins >= 2 and member.status.joined):  # noqa: ASYNC110 (polls)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
