"""Mutual TLS 1.3 on real loopback sockets: who is accepted, who is refused, failures."""

from __future__ import annotations

import os
import warnings

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from net_helpers import handshake_pair, tcp_transport_pair
from OpenSSL import SSL, crypto

from p2psync.errors import RemoteProtocolError, TrustError
from p2psync.identity import DeviceID, Identity
from p2psync.net.tls import (
    ALPN_PROTOCOL,
    TLSStream,
    make_tls_context,
    tls_accept,
    tls_connect,
)
from p2psync.net.trust import PeerRejectedError, TrustFailure, authenticate_peer


def raw_context(
    identity: Identity | None,
    *,
    alpn: list[bytes] | None = None,
    max_version: int = SSL.TLS1_3_VERSION,
    extra_chain: Identity | None = None,
) -> SSL.Context:
    """A client context that breaks one of our rules (no cert, no ALPN, TLS 1.2...)."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_max_proto_version(max_version)
    if identity is not None:
        ctx.use_certificate(x509.load_pem_x509_certificate(identity.cert_pem))
        ctx.use_privatekey(identity.private_key())
    if extra_chain is not None:
        ctx.add_extra_chain_cert(x509.load_pem_x509_certificate(extra_chain.cert_pem))
    ctx.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    if alpn:
        ctx.set_alpn_protos(alpn)
    return ctx


async def expect_refused_client(client: TLSStream) -> None:
    """A refused client sees it at the handshake or on its first receive, never data."""
    with trio.fail_after(10):
        with pytest.raises((trio.BrokenResourceError, RemoteProtocolError)):
            await client.do_handshake()
            data = await client.receive_some()
            # A clean close without data also counts as refused; turn it into an error.
            assert data == b""
            raise trio.BrokenResourceError("closed by the server")
    await trio.aclose_forcefully(client)


class CorruptingStream(trio.abc.Stream):
    """Passes bytes through, but flips one bit in the next send once ``armed``."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.armed = False

    async def send_all(self, data) -> None:
        if self.armed and len(data) > 10:
            self.armed = False
            corrupted = bytearray(data)
            corrupted[len(corrupted) // 2] ^= 0x01
            data = bytes(corrupted)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_mutual_auth_on_loopback(alice: Identity, bob: Identity):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    payload = os.urandom(3 * 1024 * 1024 + 17)
    results: dict[str, object] = {}

    async def server() -> None:
        transport = await listeners[0].accept()
        stream = await tls_accept(transport, bob)
        peer = authenticate_peer(
            stream.peer_certificate_chain_der(),
            our_id=bob.device_id,
            expected=None,
            is_known=lambda d: d == alice.device_id,
        )
        results["server_peer"] = peer
        results["server_alpn"] = stream.alpn_protocol()
        received = bytearray()
        while len(received) < len(payload):
            received += await stream.receive_some()
        results["received"] = bytes(received)
        await stream.send_all(b"thanks")
        assert await stream.receive_some() == b""
        await stream.aclose()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            client = await tls_connect(await trio.open_tcp_stream("127.0.0.1", port), alice)
            assert client.tls_version() == "TLSv1.3"
            assert client.alpn_protocol() == ALPN_PROTOCOL
            peer = authenticate_peer(
                client.peer_certificate_der(),
                our_id=alice.device_id,
                expected=bob.device_id,
                is_known=lambda d: d == bob.device_id,
            )
            assert peer == bob.device_id
            await client.send_all(payload)
            assert await client.receive_some() == b"thanks"
            await client.aclose()
        for listener in listeners:
            await listener.aclose()
    assert results["server_peer"] == alice.device_id
    assert results["server_alpn"] == ALPN_PROTOCOL
    assert results["received"] == payload


async def test_dialling_x_but_reaching_y_is_refused(alice: Identity, bob: Identity, mallory):
    client_raw, server_raw = await tcp_transport_pair()
    servers: list[TLSStream] = []

    async def accept() -> None:
        servers.append(await tls_accept(server_raw, mallory))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        client = await tls_connect(client_raw, alice)
    with pytest.raises(PeerRejectedError) as info:
        authenticate_peer(
            client.peer_certificate_der(),
            our_id=alice.device_id,
            expected=bob.device_id,
            is_known=lambda d: True,
        )
    assert info.value.reason is TrustFailure.UNEXPECTED_DEVICE
    assert info.value.device_id == mallory.device_id
    await client.aclose()
    await servers[0].aclose()


async def test_client_without_certificate_is_refused(bob: Identity):
    client_raw, server_raw = await tcp_transport_pair()
    client = TLSStream(client_raw, raw_context(None, alpn=[ALPN_PROTOCOL]), server_side=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect_refused_client, client)
        with pytest.raises(trio.BrokenResourceError, match="certificate"):
            await tls_accept(server_raw, bob)


@pytest.mark.parametrize("alpn", [None, [b"http/1.1"]], ids=["no-alpn", "other-alpn"])
async def test_client_without_our_alpn_is_refused(alice: Identity, bob: Identity, alpn):
    client_raw, server_raw = await tcp_transport_pair()
    client = TLSStream(client_raw, raw_context(alice, alpn=alpn), server_side=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect_refused_client, client)
        with pytest.raises(RemoteProtocolError, match="ALPN"):
            await tls_accept(server_raw, bob)


@pytest.mark.parametrize(
    ("alpn", "said"),
    [
        (None, "offered no ALPN protocol"),
        ([b"bep/2.0"], "offered ALPN 'bep/2.0'"),
        ([b"h2", b"\xff" * 255], "offered ALPN 'h2', '\\xff"),
    ],
    ids=["none", "unknown-version", "junk"],
)
async def test_refusal_says_what_the_client_offered(alice: Identity, bob: Identity, alpn, said):
    client_raw, server_raw = await tcp_transport_pair()
    client = TLSStream(client_raw, raw_context(alice, alpn=alpn), server_side=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect_refused_client, client)
        with pytest.raises(RemoteProtocolError) as info:
            await tls_accept(server_raw, bob)
    assert said in str(info.value)
    assert len(str(info.value)) < 300


async def test_a_second_protocol_is_negotiated_and_reported(alice: Identity, bob: Identity):
    """The server picks the first of its protocols the client offers and says which, so
    the caller can choose a codec (a Syncthing client offers only bep/1.0)."""
    client_raw, server_raw = await tcp_transport_pair()
    server = TLSStream(
        server_raw, make_tls_context(bob, (ALPN_PROTOCOL, b"bep/1.0")), server_side=True
    )
    client = TLSStream(client_raw, raw_context(alice, alpn=[b"bep/1.0"]), server_side=False)
    await handshake_pair(client, server)
    assert server.alpn_protocol() == b"bep/1.0"
    assert server.alpn_offered == (b"bep/1.0",)
    await client.aclose()
    await server.aclose()


async def test_a_certificate_only_openssl_can_parse_is_a_protocol_error(
    alice: Identity, bob: Identity
):
    """X.509 "version 4": OpenSSL takes it, cryptography cannot read it; the server
    must get a RemoteProtocolError (drop this peer), not cryptography's InvalidVersion."""
    der = bytearray(x509.load_pem_x509_certificate(alice.cert_pem).public_bytes(Encoding.DER))
    at = der.index(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))
    der[at + 4] = 3
    ctx = raw_context(None, alpn=[ALPN_PROTOCOL])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.use_certificate(crypto.load_certificate(crypto.FILETYPE_ASN1, bytes(der)))
    ctx.use_privatekey(alice.private_key())
    client_raw, server_raw = await tcp_transport_pair()
    client = TLSStream(client_raw, ctx, server_side=False)
    server = TLSStream(server_raw, make_tls_context(bob), server_side=True)
    await handshake_pair(client, server)
    with pytest.raises(RemoteProtocolError, match="malformed"):
        server.peer_certificate_chain_der()
    await client.aclose()
    await server.aclose()


async def test_server_without_our_alpn_is_refused(alice: Identity, bob: Identity):
    client_raw, server_raw = await tcp_transport_pair()
    ctx = raw_context(bob)  # a TLS 1.3 server that negotiates no ALPN at all
    server = TLSStream(server_raw, ctx, server_side=True)

    async def run_server() -> None:
        with pytest.raises((trio.BrokenResourceError, RemoteProtocolError)):
            await server.do_handshake()
            await server.receive_some()
            raise trio.BrokenResourceError("client hung up")
        await server.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server)
        with pytest.raises(RemoteProtocolError, match="ALPN"):
            await tls_connect(client_raw, alice)


async def test_tls12_client_is_refused(alice: Identity, bob: Identity):
    client_raw, server_raw = await tcp_transport_pair()
    ctx = raw_context(alice, alpn=[ALPN_PROTOCOL], max_version=SSL.TLS1_2_VERSION)
    client = TLSStream(client_raw, ctx, server_side=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect_refused_client, client)
        with pytest.raises(trio.BrokenResourceError, match="unsupported protocol"):
            await tls_accept(server_raw, bob)


async def test_extra_certificates_are_refused(alice: Identity, bob: Identity, mallory):
    client_raw, server_raw = await tcp_transport_pair()
    ctx = raw_context(alice, alpn=[ALPN_PROTOCOL], extra_chain=mallory)
    client = TLSStream(client_raw, ctx, server_side=False)
    server = TLSStream(server_raw, make_tls_context(bob), server_side=True)
    await handshake_pair(client, server)
    chain = server.peer_certificate_chain_der()
    assert len(chain) == 2
    assert DeviceID.from_cert_der(chain[0]) == alice.device_id
    with pytest.raises(TrustError):
        server.peer_certificate_der()
    with pytest.raises(PeerRejectedError) as info:
        authenticate_peer(chain, our_id=bob.device_id, expected=None, is_known=lambda d: True)
    assert info.value.reason is TrustFailure.EXTRA_CERTIFICATES
    # The client side sees exactly one certificate from our server.
    assert DeviceID.from_cert_der(client.peer_certificate_der()) == bob.device_id
    await client.aclose()
    await server.aclose()


async def test_abrupt_close_mid_stream_is_an_error_not_a_hang(tcp_tls_pair):
    client, server = await tcp_tls_pair()
    await client.send_all(b"partial message")
    await client.transport.aclose()  # vanish without close_notify
    with trio.fail_after(5):
        received = b""
        with pytest.raises(trio.BrokenResourceError, match="close_notify"):
            while True:
                received += await server.receive_some()
    assert received == b"partial message"
    # The stream stays broken, and closing it still works.
    with pytest.raises(trio.BrokenResourceError):
        await server.receive_some()
    await server.aclose()
    await client.aclose()


async def test_aclose_tolerates_a_vanished_peer(tcp_tls_pair):
    client, server = await tcp_tls_pair()
    await server.transport.aclose()
    with trio.fail_after(5):
        await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")
    await server.aclose()


async def test_receiving_over_a_socket_closed_underneath_is_a_stream_error(tcp_tls_pair):
    client, server = await tcp_tls_pair()
    await client.send_all(b"x" * 100_000)
    assert await server.receive_some(10) == b"x" * 10  # the rest waits in the engine
    await server.transport.aclose()
    with pytest.raises(trio.ClosedResourceError):  # not an OSError from the socket
        while True:
            await server.receive_some()
    await server.aclose()
    await client.aclose()


async def test_the_engine_encrypts_a_whole_send_chunk_per_call(memory_tls_pair):
    # One SSL_write per 256 KiB chunk, not one per 16 KiB record (pyOpenSSL's default).
    client, server = await memory_tls_pair()
    chunk = os.urandom(256 * 1024)
    assert client._conn.send(chunk) == len(chunk)
    client._conn.bio_read(512 * 1024)  # the records, dropped: the pair is done with
    await trio.aclose_forcefully(client)
    await trio.aclose_forcefully(server)


async def test_flipped_bit_in_transit_is_detected(alice: Identity, bob: Identity):
    client_raw, server_raw = await tcp_transport_pair()
    corrupting = CorruptingStream(client_raw)
    client = TLSStream(corrupting, make_tls_context(alice), server_side=False)
    server = TLSStream(server_raw, make_tls_context(bob), server_side=True)
    await handshake_pair(client, server)
    await client.send_all(b"first message arrives intact")
    assert await server.receive_some() == b"first message arrives intact"
    corrupting.armed = True
    await client.send_all(b"this one is tampered with on the wire" * 10)
    with trio.fail_after(5):
        with pytest.raises(trio.BrokenResourceError, match="TLS receive failed"):
            await server.receive_some()
    await server.aclose()
    await client.aclose()


async def test_handshake_times_out_and_closes_the_transport(bob: Identity, autojump_clock):
    client_raw, server_raw = trio.testing.memory_stream_pair()
    with pytest.raises(trio.TooSlowError):
        await tls_accept(server_raw, bob, handshake_timeout=3)
    assert trio.current_time() == pytest.approx(3)
    # The silent client sees the server hang up.
    assert await client_raw.receive_some() == b""


async def test_handshake_rules(alice: Identity, bob: Identity):
    a, b = trio.testing.memory_stream_pair()
    client = TLSStream(a, make_tls_context(alice), server_side=False)
    server = TLSStream(b, make_tls_context(bob), server_side=True)
    assert not client.handshake_done
    with pytest.raises(trio.BrokenResourceError, match="handshake"):
        await client.send_all(b"too early")
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            nursery.start_soon(server.do_handshake)
    await trio.aclose_forcefully(client)
    await trio.aclose_forcefully(server)


async def test_handshake_twice_is_a_no_op(memory_tls_pair):
    client, server = await memory_tls_pair()
    await client.do_handshake()
    await server.do_handshake()
    await client.send_all(b"still fine")
    assert await server.receive_some() == b"still fine"
    await client.aclose()
    await server.aclose()


async def test_full_duplex_bulk_transfer(tcp_tls_pair):
    client, server = await tcp_tls_pair()
    up, down = os.urandom(2 * 1024 * 1024), os.urandom(2 * 1024 * 1024)

    async def pump(sender: TLSStream, data: bytes) -> None:
        await sender.send_all(data)
        await sender.send_eof()

    async def drain(receiver: TLSStream, into: bytearray) -> None:
        while chunk := await receiver.receive_some():
            into += chunk

    got_up, got_down = bytearray(), bytearray()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, up)
            nursery.start_soon(pump, server, down)
            nursery.start_soon(drain, server, got_up)
            nursery.start_soon(drain, client, got_down)
    assert bytes(got_up) == up
    assert bytes(got_down) == down
    await client.aclose()
    await server.aclose()


async def test_cancelled_send_breaks_the_stream_instead_of_corrupting_it(lockstep_tls_pair):
    client, server = await lockstep_tls_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"nobody reads this")  # lockstep: blocks
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"later")
    await trio.aclose_forcefully(client)
    await trio.aclose_forcefully(server)
