"""A minimal blocking BEP peer for tests: our sans-IO Connection with the BEP codec over
pyOpenSSL TLS 1.3 (ALPN ``bep/1.0``), driven step by step by the test."""

from __future__ import annotations

import select
import socket
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from p2psync.identity import Identity
from p2psync.protocol.bep import BepCodec
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import Hello, Message


class BepTestPeer:
    def __init__(self, identity: Identity, port: int, name: str) -> None:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.use_certificate(x509.load_pem_x509_certificate(identity.cert_pem))
        ctx.use_privatekey(serialization.load_pem_private_key(identity.key_pem, None))
        ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        ctx.set_alpn_protos([b"bep/1.0"])
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.settimeout(None)  # pyOpenSSL needs a blocking socket; reads wait in select
        self.sock = sock
        self.tls = SSL.Connection(ctx, sock)
        self.tls.set_connect_state()
        self.tls.do_handshake()
        assert self.tls.get_alpn_proto_negotiated() == b"bep/1.0"
        self.conn = Connection(Hello(name, "p2psync", "v0.1.0", time.time_ns()), wire=BepCodec())
        self.tls.sendall(self.conn.start())

    def send(self, message: Message) -> None:
        self.tls.sendall(self.conn.send(message))

    def next_event(self, timeout: float = 20) -> object:
        deadline = time.monotonic() + timeout
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            if time.monotonic() > deadline:
                raise AssertionError("no event from the peer in time")
            if not self.tls.pending():
                select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))
            try:
                data = self.tls.recv(1 << 20)
            except SSL.WantReadError:
                continue
            except (SSL.ZeroReturnError, SSL.SysCallError):
                data = b""
            self.conn.receive_data(data)

    def close(self) -> None:
        try:
            self.tls.shutdown()
        except SSL.Error:
            pass
        self.tls.close()
