"""The TLS context p2psync speaks (TLS 1.3 only, mutual certificates, ALPN) and the
readable reasons for TLS failures; the stream over it is :mod:`p2psync.net.tls`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from ..identity import Identity
from ..protocol.wire import SUPPORTED_ALPNS

# How many offered ALPN names a server keeps for its log line, and how much it shows.
_ALPN_KEPT = 8
_ALPN_NAME_SHOWN = 40
_ALPN_TEXT_SHOWN = 200


def make_tls_context(
    identity: Identity, protocols: Sequence[bytes] = SUPPORTED_ALPNS
) -> SSL.Context:
    """A context for both roles: TLS 1.3 only, our certificate, peer certificate required.

    The verify callback accepts every certificate: trust is by device ID, checked after
    the handshake. One context can be shared by all connections of a device.
    ``protocols`` are the ALPN protocols we speak, preferred first: a client offers them,
    a server picks the first of them the client offered; the handshake fails unless
    one was agreed, and :meth:`TLSStream.alpn_protocol` tells the caller which.
    """
    if not protocols:
        raise ValueError("at least one ALPN protocol is needed")
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate(x509.load_pem_x509_certificate(identity.cert_pem))
    ctx.use_privatekey(identity.private_key())
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_certificate)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_alpn_protos(list(protocols))
    ctx.set_alpn_select_callback(functools.partial(_select_alpn, tuple(protocols)))
    return ctx


def _accept_any_certificate(
    conn: SSL.Connection, cert: object, errnum: int, depth: int, ok: int
) -> bool:
    return True


def _select_alpn(ours: tuple[bytes, ...], conn: SSL.Connection, offered: list[bytes]) -> Any:
    # Never raise here: pyOpenSSL keeps callback errors on the shared Context.
    conn.set_app_data(tuple(offered[:_ALPN_KEPT]))  # read by TLSStream.alpn_offered
    for protocol in ours:
        if protocol in offered:
            return protocol
    # No overlap: the handshake completes without ALPN and do_handshake refuses it,
    # saying what the peer offered.
    return SSL.NO_OVERLAPPING_PROTOCOLS


def describe_alpn(offered: tuple[bytes, ...] | None) -> str:
    """What a client offered, for a log line (names shortened, non-ASCII escaped)."""
    if not offered:
        return "no ALPN protocol"
    names = [p[:_ALPN_NAME_SHOWN].decode("ascii", "backslashreplace") for p in offered]
    text = ", ".join(f"'{n}'" for n in names)
    return "ALPN " + (text if len(text) <= _ALPN_TEXT_SHOWN else text[:_ALPN_TEXT_SHOWN] + "...")


def describe_tls_error(exc: SSL.Error) -> str:
    """A readable one-line reason for an OpenSSL error."""
    if isinstance(exc, SSL.SysCallError):
        if exc.args and exc.args[0] == -1:
            return "the peer closed the connection without a TLS close_notify (truncated)"
        return f"system error {exc.args!r}"
    reasons = []
    for entry in exc.args[0] if exc.args and isinstance(exc.args[0], list) else []:
        if isinstance(entry, tuple) and entry:
            reasons.append(str(entry[-1]))
    return "; ".join(reasons) or repr(exc)
