"""HTTPS with an optional client certificate, for Syncthing's discovery protocol (v3).

A Syncthing device announces over HTTPS with its self-signed device certificate as the
TLS client certificate; the certificate's hash is the device ID. Python's ``ssl`` cannot
accept a client certificate that chains to no CA, so TLS is terminated here with
pyOpenSSL (p2psync's :class:`~p2psync.net.tls.TLSStream`): the server asks for a
certificate, accepts any (or none: lookups and p2psync's signed /v1 API need none), and
hands the DER to the handlers through the connection's ``state``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from OpenSSL import SSL

from p2psync.errors import P2PSyncError
from p2psync.identity import DeviceID
from p2psync.net.tls import TLSStream

CLIENT_CERT_STATE = "tls_client_cert_der"
ALPN_HTTP1 = b"http/1.1"


def make_server_context(certfile: str, keyfile: str) -> SSL.Context:
    """TLS 1.2+, our certificate, any client certificate requested but not required."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate_chain_file(certfile)
    ctx.use_privatekey_file(keyfile)
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_alpn_select_callback(_select_http1)
    return ctx


def certificate_device_id(certfile: str) -> DeviceID:
    """The device ID of the server certificate (what Syncthing's ``?id=`` pins)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    with open(certfile, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return DeviceID(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest())


def _accept_any(conn: SSL.Connection, cert: object, errnum: int, depth: int, ok: int) -> bool:
    return True


def _select_http1(conn: SSL.Connection, offered: list[bytes]) -> Any:
    return ALPN_HTTP1 if ALPN_HTTP1 in offered else SSL.NO_OVERLAPPING_PROTOCOLS


async def serve_tls_connection(
    serve: Callable[[trio.abc.HalfCloseableStream, dict[str, bytes]], Awaitable[None]],
    context: SSL.Context,
    handshake_timeout: float,
    stream: trio.SocketStream,
) -> None:
    """Handshake, then ``serve`` HTTP with the client certificate (if any) in the state."""
    tls = TLSStream(stream, context, server_side=True, require_alpn=False)  # Go sends none
    try:
        with trio.fail_after(handshake_timeout):
            await tls.do_handshake()
        chain = tls.peer_certificate_chain_der()
    except (trio.BrokenResourceError, trio.TooSlowError, P2PSyncError):
        await trio.aclose_forcefully(tls)
        return
    await serve(tls, {CLIENT_CERT_STATE: chain[0]} if len(chain) == 1 else {})
