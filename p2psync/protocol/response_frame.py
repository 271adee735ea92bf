"""A Response's msgpack body around its block data, without copying the data.

msgpack packs ``{"id": id, "data": data, "code": code}`` as

    0x83 | fixstr "id" | int | fixstr "data" | bin header | data | fixstr "code" | int

so the sender can write the bytes before and after ``data`` itself and hand the block
to the stream as a buffer of its own: the frame on the wire is byte for byte what
``msgpack.packb`` makes (tests/protocol/test_response_frame.py checks that). The
receiver reads the same layout back from the front of a frame and takes ``data`` out
of its receive buffer with one copy. Any other layout (keys in another order, extra
keys, another int encoding, trailing bytes) is left to the generic msgpack decoder, so
what is accepted, and every error, stays exactly as it was.
"""

from __future__ import annotations

import struct

import msgpack

from . import limits as L

_MAP3 = 0x83
KEY_ID = b"\xa2id"
KEY_DATA = b"\xa4data"
KEY_CODE = b"\xa4code"
_U8, _U16, _U32, _U64 = (struct.Struct(f">{c}") for c in "BHIQ")
_UINTS = {0xCC: _U8, 0xCD: _U16, 0xCE: _U32, 0xCF: _U64}
_BINS = {0xC4: _U8, 0xC5: _U16, 0xC6: _U32}

# The longest prefix: map header, "id", a uint64, "data", a bin32 header.
MAX_PREFIX = 1 + len(KEY_ID) + 9 + len(KEY_DATA) + 5
SUFFIX_SIZE = len(KEY_CODE) + 1  # the code is a positive fixint in the layout read here


def bin_header(size: int) -> bytes:
    """msgpack's header for ``size`` bytes of bin (the smallest form, as packb picks)."""
    if size < 0x100:
        return b"\xc4" + _U8.pack(size)
    if size < 0x10000:
        return b"\xc5" + _U16.pack(size)
    return b"\xc6" + _U32.pack(size)


def prefix_and_suffix(request_id: int, size: int, code: int) -> tuple[bytes, bytes]:
    """The body bytes before and after ``size`` bytes of data (checked values only)."""
    prefix = b"".join(
        (bytes((_MAP3,)), KEY_ID, msgpack.packb(request_id), KEY_DATA, bin_header(size))
    )
    return prefix, KEY_CODE + msgpack.packb(code)


def read_prefix(head: bytes) -> tuple[int, int, int] | None:
    """``(id, data offset, data size)`` from the first bytes of a Response body in the
    layout above, or None for anything else (the caller decodes it the generic way)."""
    if len(head) < 1 + len(KEY_ID) + 1 or head[0] != _MAP3 or head[1:4] != KEY_ID:
        return None
    pos = 4
    first = head[pos]
    if first < 0x80:
        request_id = first
        pos += 1
    else:
        form = _UINTS.get(first)
        if form is None or len(head) < pos + 1 + form.size:
            return None
        (request_id,) = form.unpack_from(head, pos + 1)
        pos += 1 + form.size
    if head[pos : pos + len(KEY_DATA)] != KEY_DATA:
        return None
    pos += len(KEY_DATA)
    if len(head) <= pos:
        return None
    form = _BINS.get(head[pos])
    if form is None or len(head) < pos + 1 + form.size:
        return None
    (size,) = form.unpack_from(head, pos + 1)
    if size > L.MSGPACK_LIMITS["max_bin_len"]:
        return None  # msgpack's own error says what is wrong
    return request_id, pos + 1 + form.size, size


def read_suffix(tail: bytes) -> int | None:
    """The code from the bytes after the data, or None if they are not exactly
    ``"code"`` and a positive fixint."""
    if len(tail) != SUFFIX_SIZE or tail[: len(KEY_CODE)] != KEY_CODE or tail[-1] >= 0x80:
        return None
    return tail[-1]
