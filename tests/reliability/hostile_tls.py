"""A TLS client an attacker controls byte by byte, for driving a daemon's real listener.

Unlike ``p2psync.net.tls.TLSStream`` it checks nothing (any ALPN, any TLS version, no
certificate) and can stop at every step of the handshake: the OpenSSL engine runs on
memory BIOs and the test decides which of its bytes reach the socket, and when.
"""

from __future__ import annotations

import datetime
import socket
import struct
import warnings

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from p2psync.identity import Identity
from p2psync.protocol.connection import Connection
from p2psync.protocol.messages import Hello

Credentials = tuple[x509.Certificate, object]  # certificate, private key


def p2psync_credentials(identity: Identity) -> Credentials:
    return x509.load_pem_x509_certificate(identity.cert_pem), identity.private_key()


def self_signed(*, rsa_key: bool = False, expired: bool = False) -> Credentials:
    """A self-signed certificate: RSA-2048 or ECDSA P-256, valid now or expired in 2001."""
    key = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    if expired:
        start = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        end = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    else:
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        end = start + datetime.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def with_x509_version(credentials: Credentials, version: int) -> Credentials:
    """The same certificate with its version field rewritten (the signature goes stale,
    which no p2psync peer checks): OpenSSL accepts version 4, Python's cryptography not."""
    der = bytearray(credentials[0].public_bytes(Encoding.DER))
    at = der.index(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))  # [0] EXPLICIT INTEGER 2 (v3)
    der[at + 4] = version
    return crypto.load_certificate(crypto.FILETYPE_ASN1, bytes(der)), credentials[1]  # type: ignore[return-value]


def client_context(
    credentials: Credentials | None,
    *,
    alpn: list[bytes] | None = None,
    max_version: int = SSL.TLS1_3_VERSION,
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_max_proto_version(max_version)
    if credentials is not None:
        with warnings.catch_warnings():  # a pyOpenSSL X509 (see with_x509_version)
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.use_certificate(credentials[0])
        ctx.use_privatekey(credentials[1])  # type: ignore[arg-type]
    ctx.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    if alpn:
        ctx.set_alpn_protos(alpn)
    return ctx


def stranger_hello() -> bytes:
    return Connection(
        Hello(device_name="mallory", client_name="p2psync", client_version="x", timestamp=1)
    ).start()


class RawTLSClient:
    """A client TLS engine over a TCP connection; every send is explicit."""

    def __init__(self, tcp: trio.SocketStream, context: SSL.Context) -> None:
        self.tcp = tcp
        self.conn = SSL.Connection(context, None)
        self.conn.set_connect_state()
        self.closed_by_server = False
        self.local_port = int(tcp.socket.getsockname()[1])

    @classmethod
    async def connect(
        cls, address: tuple[str, int], context: SSL.Context, *, source: str | None = None
    ) -> RawTLSClient:
        return cls(await open_tcp(address, source=source), context)

    def _pending_output(self) -> bytes:
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                return out

    def client_hello(self) -> bytes:
        """The first flight (ClientHello), not yet sent."""
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            pass
        return self._pending_output()

    async def read_server_flight(self) -> bytes:
        """Read until the engine has the server's flight; our answer, not yet sent.

        Returns b"" (and sets ``closed_by_server``) if the server closed first.
        """
        while True:
            try:
                self.conn.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error:
                self.closed_by_server = True
                return b""
            else:
                return self._pending_output()
            out = self._pending_output()
            if out:
                return out
            data = await self.receive_raw()
            if not data:
                self.closed_by_server = True
                return b""
            self.conn.bio_write(data)

    def encrypt(self, plaintext: bytes) -> bytes:
        self.conn.send(plaintext)
        return self._pending_output()

    def alpn_protocol(self) -> bytes:
        return self.conn.get_alpn_proto_negotiated()

    async def send_raw(self, data: bytes) -> None:
        await self.tcp.send_all(data)

    async def receive_raw(self) -> bytes:
        try:
            return await self.tcp.receive_some(65536)
        except trio.BrokenResourceError:
            return b""

    async def handshake(self) -> None:
        """The whole TLS handshake, as a well-behaved client would do it."""
        await self.send_raw(self.client_hello())
        answer = await self.read_server_flight()
        if answer:
            await self.send_raw(answer)

    async def wait_closed_by_server(self, timeout: float) -> bool:
        """True if the server ends the connection within ``timeout`` (whatever it sent)."""
        with trio.move_on_after(timeout):
            while await self.receive_raw():
                pass
            return True
        return False

    async def close(self, *, reset: bool = False) -> None:
        """Close the TCP connection: a FIN, or an RST with ``reset``."""
        if reset:
            self.tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.tcp.aclose()


async def open_tcp(address: tuple[str, int], *, source: str | None = None) -> trio.SocketStream:
    """A TCP connection, from the loopback ``source`` address if given."""
    if source is None:
        return await trio.open_tcp_stream(*address)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind((source, 0))
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)
