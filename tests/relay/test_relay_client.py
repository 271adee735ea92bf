"""The relay client against a real strelaysrv on loopback: join, invite, session, pins."""

from __future__ import annotations

import pytest
import trio
from strelaysrv_process import Relay

from p2psync.errors import TrustError
from p2psync.identity import DeviceID, Identity, generate_identity
from p2psync.net.relay import (
    RelayError,
    RelayMember,
    dial_through_relay,
    make_relay_context,
)
from p2psync.net.tls import TLSStream, make_tls_context, tls_accept, tls_connect
from p2psync.protocol.relay import SessionInvitation, parse_relay_url


@pytest.fixture(scope="module")
def alice() -> Identity:
    return generate_identity()


@pytest.fixture(scope="module")
def bob() -> Identity:
    return generate_identity()


async def _wait(condition: object, what: str, timeout: float = 20) -> None:
    with trio.fail_after(timeout):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 (polls)
            await trio.sleep(0.02)


async def test_a_peer_is_reached_through_the_relay_with_end_to_end_tls(
    relay: Relay, alice: Identity, bob: Identity
) -> None:
    url = parse_relay_url(relay.url)
    accepted: trio.MemorySendChannel[tuple[TLSStream, SessionInvitation]]
    accepted, received = trio.open_memory_channel(1)

    async def on_session(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
        assert invitation.server_socket  # the invited side is the TLS server
        tls = await tls_accept(stream, make_tls_context(bob))
        await accepted.send((tls, invitation))

    async with trio.open_nursery() as nursery:
        member = RelayMember(url, make_relay_context(bob), on_session, nursery)
        nursery.start_soon(member.run)
        await _wait(lambda: member.status.joined, "bob joined the relay")

        stream, invitation = await dial_through_relay(url, bob.device_id, make_relay_context(alice))
        assert not invitation.server_socket
        client = await tls_connect(stream, make_tls_context(alice))
        with trio.fail_after(20):
            server, their_invitation = await received.receive()
        assert their_invitation.from_device == alice.device_id.raw
        # Each end sees the other's device certificate: the TLS session is theirs, not the relay's.
        assert DeviceID.from_cert_der(client.peer_certificate_der()) == bob.device_id
        assert DeviceID.from_cert_der(server.peer_certificate_der()) == alice.device_id
        payload = bytes(range(256)) * 1024
        async with trio.open_nursery() as inner:
            inner.start_soon(client.send_all, payload)
            got = bytearray()
            while len(got) < len(payload):
                got += await server.receive_some()
        assert bytes(got) == payload
        await server.send_all(b"pong")
        assert await client.receive_some() == b"pong"
        await client.aclose()
        await server.aclose()
        nursery.cancel_scope.cancel()


async def test_dialling_a_device_that_is_not_joined_says_not_found(
    relay: Relay, alice: Identity, bob: Identity
) -> None:
    with pytest.raises(RelayError, match="not found"):
        await dial_through_relay(
            parse_relay_url(relay.url), bob.device_id, make_relay_context(alice)
        )


async def test_a_relay_with_another_certificate_is_refused(
    relay: Relay, alice: Identity, bob: Identity
) -> None:
    wrong = parse_relay_url(f"relay://127.0.0.1:{relay.port}/?id={bob.device_id}")
    with pytest.raises(TrustError, match="not"):
        await dial_through_relay(wrong, alice.device_id, make_relay_context(alice))


async def test_the_member_rejoins_after_the_relay_restarts(relay: Relay, bob: Identity) -> None:
    url = parse_relay_url(relay.url)

    async def on_session(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        member = RelayMember(url, make_relay_context(bob), on_session, nursery)
        nursery.start_soon(member.run)
        await _wait(lambda: member.status.joined, "joined")
        await trio.to_thread.run_sync(relay.stop)
        await _wait(lambda: not member.status.joined, "noticed the relay is gone")
        assert member.status.last_error
        await trio.to_thread.run_sync(relay.start)
        await _wait(lambda: member.status.joined, "joined again")
        nursery.cancel_scope.cancel()


async def test_a_relay_that_never_answers_is_given_up_and_retried(bob: Identity) -> None:
    """A relay that accepts TCP but never answers: the join times out, the member retries."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    url = parse_relay_url(f"relay://127.0.0.1:{port}/?id={bob.device_id}")
    held: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        held.append(stream)
        await trio.sleep_forever()

    async def on_session(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, hold, listeners)
        member = RelayMember(url, make_relay_context(bob), on_session, nursery)
        member.connect_timeout = 0.5
        nursery.start_soon(member.run)
        await _wait(lambda: member.status.failures >= 2, "the member retried the silent relay")
        assert "TooSlow" in member.status.last_error or "timed out" in member.status.last_error
        nursery.cancel_scope.cancel()
