"""Bytes <-> messages: the Hello preamble, length-prefixed frames and msgpack bodies.

    Hello:  magic u32 BE | length u16 BE | msgpack map
    Frame:  length u32 BE | type u8 | msgpack map      (length counts type + payload)

The ``parse_*`` functions look at the front of a receive buffer and return
``(value, bytes_consumed)`` or ``None`` when more bytes are needed. They check every
length field as soon as its bytes are there, so a hostile length fails before anything
is buffered for it. Decoding errors are RemoteProtocolError; refusing to encode invalid
data is LocalProtocolError.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from ..errors import LocalProtocolError, RemoteProtocolError
from . import limits as L
from . import metering, response_frame, wire_schema
from .messages import MESSAGE_TYPES, Hello, Message, MessageType, Response
from .receive_buffer import ReceiveBuffer
from .validate import Invalid

HELLO_HEADER = struct.Struct(">IH")
FRAME_HEADER = struct.Struct(">IB")
LENGTH = struct.Struct(">I")
TYPE_MASK = 0x7F
COMPRESSED_FLAG = 0x80  # reserved for LZ4 bodies; must be 0 in wire version 1

_UNPACK_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def unpack(payload: bytes | memoryview, what: str) -> Any:
    """One msgpack value with strict types, per-object size limits and, for a payload
    larger than UNMETERED_PAYLOAD, a bound on its decoded size (limits.py).

    The error is raised outside the ``except`` blocks, so it has no ``__context__``: a
    caught exception's traceback would keep the half-built value alive as long as the
    error is kept."""
    try:
        if len(payload) <= L.UNMETERED_PAYLOAD:
            return msgpack.unpackb(payload, **_UNPACK_OPTIONS)
        return metering.metered_unpackb(payload, **_UNPACK_OPTIONS)[0]
    except metering.OverBudget:
        mib = L.MAX_DECODED_COST // (1024 * 1024)
        problem = f"decodes into more than {mib} MiB of objects ({len(payload)} bytes)"
    except _UNPACK_ERRORS as exc:
        problem = f"malformed msgpack ({str(exc) or type(exc).__name__})"
    del payload  # may be a copy of the frame: the error's traceback must not keep it
    raise RemoteProtocolError(f"{what}: {problem}")


_UNPACK_OPTIONS: dict[str, Any] = {
    "raw": False,
    "strict_map_key": True,
    "use_list": False,
    "ext_hook": _refuse_ext,
    "timestamp": 0,
    **L.MSGPACK_LIMITS,
}


def _pack(plain: Any, what: str) -> bytes:
    try:
        return msgpack.packb(plain, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {what}: {exc}") from None


# -- Hello --------------------------------------------------------------------------------


def encode_hello(hello: Hello) -> bytes:
    if not isinstance(hello, Hello):
        raise LocalProtocolError(f"expected a Hello, got {type(hello).__name__}")
    try:
        plain = wire_schema.hello_to_plain(hello)
        wire_schema.hello_from_plain(plain)
    except Invalid as exc:
        raise LocalProtocolError(f"refusing to send an invalid Hello: {exc}") from None
    body = _pack(plain, "Hello")
    if len(body) > L.MAX_HELLO_SIZE:
        raise LocalProtocolError(f"Hello is {len(body)} bytes, more than {L.MAX_HELLO_SIZE}")
    return HELLO_HEADER.pack(L.MAGIC, len(body)) + body


def parse_hello(buf: bytes | bytearray) -> tuple[Hello, int] | None:
    if len(buf) >= 4:
        (magic,) = LENGTH.unpack_from(buf)
        if magic == L.SYNCTHING_MAGIC:
            raise RemoteProtocolError("the peer speaks Syncthing's BEP, not p2psync")
        if magic != L.MAGIC:
            raise RemoteProtocolError(f"not a p2psync peer: magic {magic:#010x}")
    if len(buf) < HELLO_HEADER.size:
        return None
    _, length = HELLO_HEADER.unpack_from(buf)
    if length > L.MAX_HELLO_SIZE:
        raise RemoteProtocolError(f"Hello of {length} bytes exceeds {L.MAX_HELLO_SIZE}")
    end = HELLO_HEADER.size + length
    if len(buf) < end:
        return None
    plain = unpack(bytes(buf[HELLO_HEADER.size : end]), "Hello")
    try:
        return wire_schema.hello_from_plain(plain), end
    except Invalid as exc:
        problem = str(exc)
    raise RemoteProtocolError(f"invalid {problem}")


# -- frames -------------------------------------------------------------------------------


def message_type(message: object) -> MessageType:
    try:
        return MESSAGE_TYPES[type(message)]
    except KeyError:
        raise LocalProtocolError(f"{type(message).__name__} is not a framed message") from None


def encode_message(message: Message) -> bytes:
    """One complete frame; raises LocalProtocolError if the peer would reject it."""
    mtype, name, plain = _checked_plain(message)
    payload = _pack(plain, name)
    _check_frame(mtype, name, plain, len(payload))
    return FRAME_HEADER.pack(1 + len(payload), mtype) + payload


def encode_message_buffers(message: Message) -> tuple[bytes, ...]:
    """``encode_message`` as buffers to write one after the other: a Response carrying
    at least ZERO_COPY_DATA bytes is its header, its data object itself (not copied)
    and its last bytes; anything else is one buffer. Same checks, same bytes."""
    data = getattr(message, "data", None)
    if type(message) is not Response or type(data) is not bytes or len(data) < ZERO_COPY_DATA:
        return (encode_message(message),)  # also whatever encode_message refuses
    mtype, name, plain = _checked_plain(message)
    prefix, suffix = response_frame.prefix_and_suffix(message.id, len(data), int(message.code))
    payload_size = len(prefix) + len(data) + len(suffix)
    _check_frame(mtype, name, plain, payload_size)
    return FRAME_HEADER.pack(1 + payload_size, mtype) + prefix, data, suffix


ZERO_COPY_DATA = 64 * 1024  # smaller data is copied into its frame: one write, not three


def _checked_plain(message: Message) -> tuple[MessageType, str, dict[str, Any]]:
    mtype = message_type(message)
    name = type(message).__name__
    try:
        plain = wire_schema.to_plain(mtype, message)
        wire_schema.from_plain(mtype, plain)  # exactly the receiver's checks
    except Invalid as exc:
        raise LocalProtocolError(f"refusing to send an invalid {name}: {exc}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode {name}: {exc}") from None
    return mtype, name, plain


def _check_frame(mtype: MessageType, name: str, plain: Any, payload_size: int) -> None:
    length = 1 + payload_size
    if length > L.MAX_FRAME_SIZE:
        raise LocalProtocolError(
            f"{name} frame is {length} bytes, more than {L.MAX_FRAME_SIZE}; send smaller batches"
        )
    if payload_size > L.UNMETERED_PAYLOAD:
        cost = metering.plain_cost(mtype, plain)
        if cost > L.MAX_DECODED_COST:
            raise LocalProtocolError(
                f"{name} decodes into {cost} bytes of objects, more than "
                f"{L.MAX_DECODED_COST}; send smaller batches"
            )


def parse_frame(
    buf: bytes | bytearray, max_frame_size: int = L.MAX_FRAME_SIZE
) -> tuple[Message, int] | None:
    header = _frame_header(buf, max_frame_size)
    if header is None:
        return None
    mtype, end = header
    if len(buf) < end:
        return None
    # Decode straight from the buffer (no copy of a 16 MiB body); release the views
    # before returning so the caller can shrink the buffer.
    with memoryview(buf) as view, view[FRAME_HEADER.size : end] as payload:
        if mtype == MessageType.RESPONSE:
            response = _response_from(payload)
            if response is not None:
                return response, end
        return decode_payload(mtype, payload), end


def parse_buffered(
    buf: ReceiveBuffer, max_frame_size: int = L.MAX_FRAME_SIZE
) -> tuple[Message, int] | None:
    """``parse_frame`` on a ReceiveBuffer: nothing is copied until the whole frame is
    there. A Response's data is then copied straight out of the chunks; any other frame
    is decoded from the chunks merged into one buffer (freed chunk by chunk as they are
    merged: a frame is never held twice)."""
    header = _frame_header(buf.copy(0, FRAME_HEADER.size), max_frame_size)
    if header is None:
        return None
    mtype, end = header
    if len(buf) < end:
        return None
    if mtype == MessageType.RESPONSE:
        response = _buffered_response(buf, end)
        if response is not None:
            return response, end
    with memoryview(buf.contiguous()) as view, view[FRAME_HEADER.size : end] as payload:
        return decode_payload(mtype, payload), end


def _frame_header(head: bytes | bytearray, max_frame_size: int) -> tuple[MessageType, int] | None:
    """The type and end of the frame at the front of ``head``; every check on the
    length and the type byte is made as soon as its bytes are there."""
    if len(head) < LENGTH.size:
        return None
    (length,) = LENGTH.unpack_from(head)
    if length == 0:
        raise RemoteProtocolError("empty frame (a frame has at least its type byte)")
    if length > max_frame_size:
        raise RemoteProtocolError(f"frame of {length} bytes exceeds the limit of {max_frame_size}")
    if len(head) < FRAME_HEADER.size:
        return None
    type_byte = head[LENGTH.size]
    if type_byte & COMPRESSED_FLAG:
        raise RemoteProtocolError("compressed frames are not supported in wire version 1")
    try:
        mtype = MessageType(type_byte & TYPE_MASK)
    except ValueError:
        raise RemoteProtocolError(f"unknown message type {type_byte}") from None
    return mtype, LENGTH.size + length


def _response_from(payload: memoryview) -> Response | None:
    """A Response body in the packb layout (response_frame.py), data copied once out
    of ``payload``; None for any other layout."""
    layout = response_frame.read_prefix(bytes(payload[: response_frame.MAX_PREFIX]))
    if layout is None:
        return None
    request_id, start, size = layout
    if len(payload) - start - size != response_frame.SUFFIX_SIZE:
        return None
    code = response_frame.read_suffix(bytes(payload[start + size :]))
    if code is None:
        return None
    return _checked_response(request_id, bytes(payload[start : start + size]), code)


def _buffered_response(buf: ReceiveBuffer, end: int) -> Response | None:
    """``_response_from`` for the frame ending at ``end`` of ``buf``."""
    body = FRAME_HEADER.size
    head = buf.copy(body, min(response_frame.MAX_PREFIX, end - body))
    layout = response_frame.read_prefix(head)
    if layout is None:
        return None
    request_id, start, size = layout
    data_end = body + start + size
    if end - data_end != response_frame.SUFFIX_SIZE:
        return None  # not the layout: copy nothing more before the generic decoder
    code = response_frame.read_suffix(buf.copy(data_end, end - data_end))
    if code is None:
        return None
    return _checked_response(request_id, buf.copy(body + start, size), code)


def _checked_response(request_id: int, data: bytes, code: int) -> Response:
    plain = {"id": request_id, "data": data, "code": code}  # what msgpack would decode
    try:
        return wire_schema.from_plain(MessageType.RESPONSE, plain)  # type: ignore[return-value]
    except Invalid as exc:
        problem = str(exc)
    del plain, data
    raise RemoteProtocolError(f"invalid {problem}")


def decode_payload(mtype: MessageType, payload: bytes | memoryview) -> Message:
    plain = unpack(payload, mtype.name)
    try:
        return wire_schema.from_plain(mtype, plain)
    except Invalid as exc:
        problem = str(exc)
    # Raised here, without the Invalid as its context and with ``plain`` and ``payload``
    # gone from this frame: the error (kept by the connection, logged) must not keep a
    # rejected payload or its objects alive.
    del plain, payload
    raise RemoteProtocolError(f"invalid {problem}")
