"""The two wire encodings a ``Connection`` can speak, behind one small interface.

A codec is chosen per connection from the ALPN protocol TLS negotiated
(``codec_for_alpn``); nothing above ``protocol/`` needs to know which one is in use.
"""

from __future__ import annotations

from typing import Protocol

from . import codec as msgpack_codec
from . import limits as L
from .bep import BepCodec
from .messages import Hello, Message
from .receive_buffer import ReceiveBuffer

P2PSYNC_ALPN = b"p2psync/1"


class WireCodec(Protocol):
    """Hello and frame encoding for one connection (``parse_*`` return None for 'need more')."""

    alpn: bytes
    name: str

    def encode_hello(self, hello: Hello) -> bytes: ...

    def parse_hello(self, buf: bytes | bytearray) -> tuple[Hello, int] | None: ...

    def encode_message(self, message: Message) -> bytes: ...

    def encode_message_buffers(self, message: Message) -> tuple[bytes, ...]:
        """The frame as buffers to write in order (their concatenation is
        ``encode_message``'s bytes): lets a codec hand block data over uncopied."""
        ...

    def parse_buffered(
        self, buf: ReceiveBuffer, max_frame_size: int = L.MAX_FRAME_SIZE
    ) -> tuple[Message, int] | None:
        """``parse_frame`` on a receive buffer (``None``: need more; nothing consumed)."""
        ...

    def parse_frame(
        self, buf: bytes | bytearray, max_frame_size: int = L.MAX_FRAME_SIZE
    ) -> tuple[Message, int] | None: ...


class MsgpackCodec:
    """p2psync's own encoding (``protocol/codec.py``): msgpack bodies in u32 frames."""

    alpn = P2PSYNC_ALPN
    name = "p2psync/1"

    def encode_hello(self, hello: Hello) -> bytes:
        return msgpack_codec.encode_hello(hello)

    def parse_hello(self, buf: bytes | bytearray) -> tuple[Hello, int] | None:
        return msgpack_codec.parse_hello(buf)

    def encode_message(self, message: Message) -> bytes:
        return msgpack_codec.encode_message(message)

    def encode_message_buffers(self, message: Message) -> tuple[bytes, ...]:
        return msgpack_codec.encode_message_buffers(message)

    def parse_buffered(
        self, buf: ReceiveBuffer, max_frame_size: int = L.MAX_FRAME_SIZE
    ) -> tuple[Message, int] | None:
        return msgpack_codec.parse_buffered(buf, max_frame_size)

    def parse_frame(
        self, buf: bytes | bytearray, max_frame_size: int = L.MAX_FRAME_SIZE
    ) -> tuple[Message, int] | None:
        return msgpack_codec.parse_frame(buf, max_frame_size)


MSGPACK = MsgpackCodec()
SUPPORTED_ALPNS = (P2PSYNC_ALPN, BepCodec.alpn)


def codec_for_alpn(alpn: bytes | None) -> WireCodec | None:
    """A fresh codec for the negotiated protocol, or None if we do not speak it."""
    if alpn == P2PSYNC_ALPN:
        return MSGPACK
    if alpn == BepCodec.alpn:
        return BepCodec()
    return None
