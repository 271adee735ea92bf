"""Mutual TLS 1.3 over any trio stream, with pyOpenSSL driven through memory BIOs.

Python's ``ssl`` refuses arbitrary self-signed client certificates, so the TLS engine
is an ``OpenSSL.SSL.Connection`` without a socket: ciphertext is moved between its
BIOs and the transport stream by :class:`TLSStream`, in the manner of trio's own
``SSLStream``. The handshake accepts any certificate; who the peer is gets decided
afterwards from the certificate hash (see :mod:`p2psync.net.trust`).
"""

from __future__ import annotations

import enum
import errno
import functools
import operator
from collections.abc import Callable
from typing import TypeVar

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from ..errors import RemoteProtocolError
from ..identity import Identity
from ..protocol.wire import P2PSYNC_ALPN
from ._conflict import ConflictDetector
from .tls_context import describe_alpn, describe_tls_error, make_tls_context
from .trust import single_certificate

__all__ = [
    "ALPN_PROTOCOL",
    "TLSStream",
    "describe_alpn",
    "describe_tls_error",
    "make_tls_context",
    "tls_accept",
    "tls_connect",
]

ALPN_PROTOCOL = P2PSYNC_ALPN
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_CLOSE_TIMEOUT = 5.0

# Plaintext encrypted per send call and ciphertext moved per transport call. Large
# chunks keep per-byte Python work at zero and per-call overhead negligible.
_SEND_CHUNK = 256 * 1024
_BIO_READ = _SEND_CHUNK + 64 * 1024
_TRANSPORT_RECEIVE = 256 * 1024
_DEFAULT_RECEIVE = 256 * 1024
# TLS's largest record plaintext: one SSL_read returns at most this much, and pyOpenSSL
# allocates the whole size asked for on every call.
_RECORD_PLAINTEXT = 16 * 1024

T = TypeVar("T")


def _write_whole_chunks(conn: SSL.Connection) -> None:
    """Let one SSL_write encrypt a whole send chunk into the memory BIO.

    pyOpenSSL turns on partial writes for every context, with which SSL_write returns
    after each 16 KiB record: a 256 KiB chunk took 16 calls through pyOpenSSL's wrapper
    (0.39 against 0.26 CPU s per GiB encrypted). Only pyOpenSSL's private binding can
    turn it off; without it :meth:`TLSStream._encrypt` takes partial writes as before.
    """
    try:
        from OpenSSL._util import lib

        lib.SSL_clear_mode(conn._ssl, lib.SSL_MODE_ENABLE_PARTIAL_WRITE)
    except (ImportError, AttributeError):  # pragma: no cover - another pyOpenSSL
        pass


class _State(enum.Enum):
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


class TLSStream(trio.abc.HalfCloseableStream):
    """A TLS 1.3 stream over ``transport`` (client or server role).

    Call :meth:`do_handshake` before sending or receiving. TLS failures raise
    ``trio.BrokenResourceError`` (the message says why); after one, the stream is
    unusable except for :meth:`aclose`. ``send_eof`` sends close_notify: the peer sees a
    clean end of stream and may keep sending to us (TLS 1.3 half-close).
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        context: SSL.Context,
        *,
        server_side: bool,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        require_alpn: bool = True,
    ) -> None:
        self.transport = transport
        self.server_side = server_side
        self._require_alpn = require_alpn  # False: HTTPS clients that offer no ALPN
        self._close_timeout = close_timeout
        self._conn = SSL.Connection(context, None)
        _write_whole_chunks(self._conn)
        if server_side:
            self._conn.set_accept_state()
        else:
            self._conn.set_connect_state()
        self._state = _State.OK
        self._handshook = False
        self._eof_sent = False
        self._incoming_eof = False
        self._close_notify_received = False
        self._deferred_error: SSL.Error | None = None
        self._delayed_outgoing = b""
        # Outer detectors enforce the Stream contract for callers; inner locks arbitrate
        # the transport between a sending and a receiving task (each may need both).
        self._send_conflict = ConflictDetector("another task is sending on this TLS stream")
        self._receive_conflict = ConflictDetector("another task is receiving on this TLS stream")
        self._handshake_conflict = ConflictDetector("the TLS handshake is already running")
        self._inner_send_lock = trio.StrictFIFOLock()
        self._inner_receive_lock = trio.Lock()
        self._inner_receive_count = 0
        # Over TCP, ciphertext is read into one buffer reused for every read, rather
        # than into a new 256 KiB bytes object each time.
        self._socket = transport.socket if isinstance(transport, trio.SocketStream) else None
        self._receive_buffer: bytearray | None = None

    # ---- introspection -------------------------------------------------------------

    @property
    def handshake_done(self) -> bool:
        return self._handshook

    def alpn_protocol(self) -> bytes | None:
        proto = self._conn.get_alpn_proto_negotiated()
        return proto or None

    @property
    def alpn_offered(self) -> tuple[bytes, ...] | None:
        """The ALPN protocols the client offered (server side; None if it offered none)."""
        offered = self._conn.get_app_data()
        return offered if isinstance(offered, tuple) else None

    def tls_version(self) -> str | None:
        return self._conn.get_protocol_version_name() if self._handshook else None

    def cipher(self) -> str | None:
        return self._conn.get_cipher_name()

    def peer_certificate_chain_der(self) -> list[bytes]:
        """Every certificate the peer sent, leaf first, in DER (same for both roles).

        ``RemoteProtocolError`` if one is malformed beyond what OpenSSL let through
        (e.g. an X.509 version that does not exist).
        """
        try:
            # On the server side OpenSSL leaves the peer's own certificate out of the chain.
            chain = self._conn.get_peer_cert_chain(as_cryptography=True) or []
            ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
            if self.server_side:
                leaf = self._conn.get_peer_certificate(as_cryptography=True)
                if leaf is not None:
                    ders.insert(0, leaf.public_bytes(serialization.Encoding.DER))
        except (ValueError, x509.InvalidVersion) as exc:
            raise RemoteProtocolError(f"the peer's certificate is malformed: {exc}") from exc
        return ders

    def peer_certificate_der(self) -> bytes:
        """The peer's one certificate; ``TrustError`` if it sent none or more than one."""
        return single_certificate(self.peer_certificate_chain_der())

    # ---- the engine ----------------------------------------------------------------

    def _check_status(self) -> None:
        if self._state is _State.CLOSED:
            raise trio.ClosedResourceError("this TLS stream was closed")
        if self._state is _State.BROKEN:
            raise trio.BrokenResourceError("this TLS stream is broken")

    def _require_handshake(self) -> None:
        if not self._handshook:
            raise trio.BrokenResourceError("TLS handshake not completed; call do_handshake()")

    def _drain_outgoing(self) -> bytes:
        parts = []
        while True:
            try:
                parts.append(self._conn.bio_read(_BIO_READ))
            except SSL.WantReadError:
                break
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def _fail(self, exc: SSL.Error, during: str) -> trio.BrokenResourceError:
        if self._state is _State.OK:
            self._state = _State.BROKEN
        return trio.BrokenResourceError(f"TLS {during} failed: {describe_tls_error(exc)}")

    async def _send_alert(self) -> bool:
        """Best effort: pass OpenSSL's fatal alert to the peer so it learns why."""
        alert = self._drain_outgoing()
        if not alert:
            return False
        alert, self._delayed_outgoing = self._delayed_outgoing + alert, b""
        with trio.move_on_after(1.0):
            async with self._inner_send_lock:
                try:
                    await self.transport.send_all(alert)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        return True

    async def _retry(
        self, fn: Callable[[], T], during: str, *, ignore_want_read: bool = False
    ) -> T | None:
        """Run ``fn`` on the TLS engine, moving ciphertext until it completes.

        Outgoing bytes are taken from the BIO and queued on the FIFO send lock with no
        checkpoint in between, so records reach the transport in the order produced.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        yielded = False
        try:
            while True:
                result: T | None = None
                want_read = False
                finished = False
                try:
                    result = fn()
                    finished = True
                except SSL.WantReadError:
                    want_read = True
                except SSL.Error as exc:
                    error = self._fail(exc, during)
                    yielded = await self._send_alert() or yielded
                    raise error from exc
                if ignore_want_read:
                    want_read = False
                    finished = True
                to_send = self._drain_outgoing()
                if during == "handshake" and finished and self.server_side:
                    # OpenSSL's TLS 1.3 server writes session tickets as the handshake
                    # completes; the client is not reading then, and over an unbuffered
                    # transport sending them would deadlock. Send them with the next
                    # outgoing data instead (trio's SSLStream does the same).
                    self._delayed_outgoing = to_send
                    to_send = b""
                elif to_send and self._delayed_outgoing:
                    to_send = self._delayed_outgoing + to_send
                    self._delayed_outgoing = b""
                if to_send:
                    try:
                        async with self._inner_send_lock:
                            yielded = True
                            await self.transport.send_all(to_send)
                    except BaseException:
                        # These records left the TLS engine but maybe not (all) the
                        # wire, e.g. on cancellation: the stream is unusable.
                        if self._state is _State.OK:
                            self._state = _State.BROKEN
                        raise
                elif want_read:
                    if self._incoming_eof:
                        raise self._fail(SSL.SysCallError(-1, "Unexpected EOF"), during)
                    seen = self._inner_receive_count
                    async with self._inner_receive_lock:
                        yielded = True
                        # Another task may have refilled the BIO while we waited.
                        if seen == self._inner_receive_count:
                            await self._receive_ciphertext()
                            self._inner_receive_count += 1
                if finished:
                    return result
        finally:
            if not yielded:
                await trio.lowlevel.cancel_shielded_checkpoint()

    async def _receive_ciphertext(self) -> None:
        """Move what the transport has into the engine; at EOF, shut its incoming BIO."""
        data: bytes | bytearray | memoryview
        if self._socket is None:
            data = await self.transport.receive_some(_TRANSPORT_RECEIVE)
        else:
            if self._receive_buffer is None:
                self._receive_buffer = bytearray(_TRANSPORT_RECEIVE)
            try:  # as trio.SocketStream.receive_some does
                received = await self._socket.recv_into(self._receive_buffer)
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    raise trio.ClosedResourceError("this socket was already closed") from None
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
            data = memoryview(self._receive_buffer)[:received]
        if data:
            self._conn.bio_write(data)
        else:
            self._incoming_eof = True
            self._conn.bio_shutdown()

    # ---- handshake -----------------------------------------------------------------

    async def do_handshake(self) -> None:
        """Run the TLS handshake; a no-op once done.

        Raises ``trio.BrokenResourceError`` if TLS fails (no certificate, TLS < 1.3, a
        bad alert, the transport closing) and ``RemoteProtocolError`` if the peer agreed
        on none of the context's ALPN protocols (the message says what it offered). Note
        that a client's handshake can succeed and the server still refuse it: the client
        then sees the refusal on its first receive.
        """
        with self._handshake_conflict:
            self._check_status()
            if self._handshook:
                await trio.lowlevel.checkpoint()
                return
            with self._send_conflict, self._receive_conflict:
                await self._retry(self._conn.do_handshake, "handshake")
            if self._require_alpn and not self._conn.get_alpn_proto_negotiated():
                self._state = _State.BROKEN
                offered = (
                    f"the peer offered {describe_alpn(self.alpn_offered)}"
                    if self.server_side
                    else "the server chose none"
                )
                raise RemoteProtocolError(f"no common ALPN protocol: {offered}")
            self._handshook = True

    # ---- sending -------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            self._check_status()
            if self._eof_sent:
                raise trio.ClosedResourceError("send_eof() was called on this TLS stream")
            self._require_handshake()
            if not data:
                await trio.lowlevel.checkpoint()
                return
            view = memoryview(data).cast("B")
            for start in range(0, len(view), _SEND_CHUNK):
                chunk = view[start : start + _SEND_CHUNK]
                await self._retry(functools.partial(self._encrypt, chunk), "send")

    def _encrypt(self, chunk: memoryview) -> None:
        while chunk:
            written = self._conn.send(chunk)
            chunk = chunk[written:]

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            self._check_status()
            if self._eof_sent:
                raise trio.ClosedResourceError("send_eof() was called on this TLS stream")
            # A receiving task may be writing to the transport (e.g. a key update
            # reply); queue behind it rather than touching the transport concurrently.
            async with self._inner_send_lock:
                await self.transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Send close_notify; receiving still works (TLS 1.3 half-close)."""
        with self._send_conflict:
            self._check_status()
            self._require_handshake()
            if self._eof_sent:
                await trio.lowlevel.checkpoint()
                return
            self._eof_sent = True
            await self._retry(self._conn.shutdown, "close_notify", ignore_want_read=True)

    # ---- receiving -----------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with self._receive_conflict:
            if max_bytes is None:
                max_bytes = _DEFAULT_RECEIVE
            else:
                max_bytes = operator.index(max_bytes)
                if max_bytes < 1:
                    raise ValueError("max_bytes must be >= 1")
            self._check_status()
            self._require_handshake()
            result = await self._retry(lambda: self._decrypt(max_bytes), "receive")
            assert result is not None
            return result

    def _decrypt(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of plaintext: one record, plus any already buffered."""
        if self._deferred_error is not None:
            raise self._deferred_error
        if self._close_notify_received:
            return b""
        try:
            first = self._conn.recv(min(max_bytes, _RECORD_PLAINTEXT))
        except SSL.ZeroReturnError:
            self._close_notify_received = True
            return b""
        parts = [first]
        got = len(first)
        while got < max_bytes:
            try:
                more = self._conn.recv(min(max_bytes - got, _RECORD_PLAINTEXT))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._close_notify_received = True
                break
            except SSL.Error as exc:
                # Report it on the next call, after the data already decrypted.
                self._deferred_error = exc
                break
            parts.append(more)
            got += len(more)
        return first if len(parts) == 1 else b"".join(parts)

    # ---- closing -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send close_notify if possible, then close the transport.

        Tolerates a peer that vanished or stopped reading (gives up after the close
        timeout); the transport is closed even if this call is cancelled.
        """
        if self._state is _State.CLOSED:
            await trio.lowlevel.checkpoint()
            return
        send_close_notify = (
            self._state is _State.OK
            and self._handshook
            and not self._eof_sent
            and not self._send_conflict.held
        )
        self._state = _State.CLOSED
        try:
            if send_close_notify:
                self._eof_sent = True
                with trio.move_on_after(self._close_timeout):
                    try:
                        await self._retry(
                            self._conn.shutdown, "close_notify", ignore_want_read=True
                        )
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
        finally:
            await self.transport.aclose()


async def _handshake_or_close(stream: TLSStream, handshake_timeout: float) -> TLSStream:
    try:
        with trio.fail_after(handshake_timeout):
            await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def tls_connect(
    transport: trio.abc.Stream,
    identity: Identity | SSL.Context,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSStream:
    """Client role: handshake over ``transport``; on any failure the transport is closed.

    Raises ``trio.TooSlowError`` after ``handshake_timeout`` seconds, otherwise as
    :meth:`TLSStream.do_handshake`. Pass a prebuilt context to reuse it across
    connections.
    """
    ctx = identity if isinstance(identity, SSL.Context) else make_tls_context(identity)
    stream = TLSStream(transport, ctx, server_side=False)
    return await _handshake_or_close(stream, handshake_timeout)


async def tls_accept(
    transport: trio.abc.Stream,
    identity: Identity | SSL.Context,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSStream:
    """Server role: like :func:`tls_connect`."""
    ctx = identity if isinstance(identity, SSL.Context) else make_tls_context(identity)
    stream = TLSStream(transport, ctx, server_side=True)
    return await _handshake_or_close(stream, handshake_timeout)
