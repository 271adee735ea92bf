"""Bytes <-> messages for Syncthing's BEP v1 (ALPN ``bep/1.0``).

    Hello:  magic 0x2EA7D90B u32 BE | length u16 BE | Hello (protobuf)
    Frame:  header length u16 BE | Header (protobuf) | body length u32 BE | body

A body is a protobuf message, or when the header says LZ4: the uncompressed length as a
u32 BE, then one raw LZ4 block. Every length is checked as soon as its bytes are there,
before anything is buffered or decompressed for it.

Messages travel as the same dataclasses as on ``p2psync/1``: decoding turns the protobuf
into the plain form ``wire_schema.from_plain`` checks (one set of rules for both protocols),
and encoding goes the other way from ``wire_schema.to_plain``. Errors are RemoteProtocolError
(decoding) and LocalProtocolError (encoding), as in ``protocol/codec.py``.
"""

from __future__ import annotations

import hashlib
import posixpath
import struct
from dataclasses import replace
from typing import Any

import lz4.block
from google.protobuf.message import DecodeError, EncodeError

from ...errors import LocalProtocolError, RemoteProtocolError, UnsafePathError
from .. import limits as L
from .. import wire_fileinfo, wire_schema
from ..codec import message_type
from ..fileinfo import MIN_BLOCK_SIZE, FileInfo, FileType
from ..messages import Compression, Hello, Index, IndexUpdate, Message, MessageType, Unsupported
from ..names import validate_name
from ..receive_buffer import ReceiveBuffer
from ..validate import Invalid
from . import proto as pb

ALPN = b"bep/1.0"
MAGIC = 0x2EA7D90B
_TOO_OLD_MAGICS = frozenset({0x00010001, 0x00010000, 0x9F79BC40})
HELLO_HEADER = struct.Struct(">IH")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
MAX_HEADER_SIZE = 64  # a Header is two small varints; anything longer is not BEP
COMPRESSION_NONE = 0
COMPRESSION_LZ4 = 1
MIN_COMPRESS_SIZE = 128  # Syncthing never compresses smaller messages

_CLASS_OF = {
    MessageType.CLUSTER_CONFIG: pb.ClusterConfig,
    MessageType.INDEX: pb.Index,
    MessageType.INDEX_UPDATE: pb.IndexUpdate,
    MessageType.REQUEST: pb.Request,
    MessageType.RESPONSE: pb.Response,
    MessageType.DOWNLOAD_PROGRESS: pb.DownloadProgress,
    MessageType.PING: pb.Ping,
    MessageType.CLOSE: pb.Close,
}
_LEGACY_SYMLINK_TYPES = (2, 3)  # SYMLINK_FILE, SYMLINK_DIRECTORY: both are symlinks here
_NS = 1_000_000_000


class BepCodec:
    """One connection's BEP encoder and decoder.

    ``compression`` is what the *peer* asked for in its ClusterConfig (what we send to
    it); whatever it sends us, compressed or not, is always accepted.
    """

    alpn = ALPN
    name = "bep/1.0"

    def __init__(self, compression: Compression = Compression.METADATA) -> None:
        self.compression = compression
        self.compressed_received = 0  # LZ4 frames decoded (for statistics and tests)

    # -- Hello ---------------------------------------------------------------------------

    def encode_hello(self, hello: Hello) -> bytes:
        if not isinstance(hello, Hello):
            raise LocalProtocolError(f"expected a Hello, got {type(hello).__name__}")
        try:
            wire_schema.hello_from_plain(wire_schema.hello_to_plain(hello))
        except Invalid as exc:
            raise LocalProtocolError(f"refusing to send an invalid Hello: {exc}") from None
        body = pb.Hello(
            device_name=hello.device_name,
            client_name=hello.client_name,
            client_version=hello.client_version,
            timestamp=hello.timestamp,
        ).SerializeToString()
        if len(body) > L.MAX_HELLO_SIZE:
            raise LocalProtocolError(f"Hello is {len(body)} bytes, more than {L.MAX_HELLO_SIZE}")
        return HELLO_HEADER.pack(MAGIC, len(body)) + body

    def parse_hello(self, buf: bytes | bytearray) -> tuple[Hello, int] | None:
        if len(buf) >= 4:
            (magic,) = U32.unpack_from(buf)
            if magic == L.MAGIC:
                raise RemoteProtocolError("the peer speaks p2psync/1, not Syncthing's BEP")
            if magic in _TOO_OLD_MAGICS:
                raise RemoteProtocolError(f"the peer speaks a pre-0.14 BEP (magic {magic:#010x})")
            if magic != MAGIC:
                raise RemoteProtocolError(f"not a BEP peer: magic {magic:#010x}")
        if len(buf) < HELLO_HEADER.size:
            return None
        _, length = HELLO_HEADER.unpack_from(buf)
        if length > L.MAX_HELLO_SIZE:
            raise RemoteProtocolError(f"Hello of {length} bytes exceeds {L.MAX_HELLO_SIZE}")
        end = HELLO_HEADER.size + length
        if len(buf) < end:
            return None
        message = _parse(pb.Hello, bytes(buf[HELLO_HEADER.size : end]), "Hello")
        plain = {
            "device_name": message.device_name,
            "client_name": message.client_name,
            "client_version": message.client_version,
            "timestamp": max(message.timestamp, 0),
        }
        try:
            return wire_schema.hello_from_plain(plain), end
        except Invalid as exc:
            raise RemoteProtocolError(f"invalid {exc}") from None

    # -- frames --------------------------------------------------------------------------

    def encode_message(self, message: Message) -> bytes:
        """One complete frame; raises LocalProtocolError if the peer would reject it."""
        mtype = message_type(message)
        name = type(message).__name__
        try:
            plain = wire_schema.to_plain(mtype, message)
            wire_schema.from_plain(mtype, plain)  # exactly the receiver's checks
            body = _TO_PB[mtype](plain).SerializeToString()
        except Invalid as exc:
            raise LocalProtocolError(f"refusing to send an invalid {name}: {exc}") from None
        except (AttributeError, TypeError, ValueError, EncodeError) as exc:
            raise LocalProtocolError(f"cannot encode {name}: {exc}") from None
        compression = COMPRESSION_NONE
        if self._should_compress(mtype, body):
            packed = lz4.block.compress(body, store_size=False)
            if len(packed) + U32.size <= len(body) - len(body) // 32:
                body = U32.pack(len(body)) + packed
                compression = COMPRESSION_LZ4
        header = b""
        if mtype or compression:  # all-default headers encode to zero bytes, as in Syncthing
            header = pb.Header(type=int(mtype), compression=compression).SerializeToString()
        if len(body) > L.MAX_FRAME_SIZE:
            raise LocalProtocolError(
                f"{name} is {len(body)} bytes, more than {L.MAX_FRAME_SIZE}; send smaller batches"
            )
        return b"".join((U16.pack(len(header)), header, U32.pack(len(body)), body))

    def encode_message_buffers(self, message: Message) -> tuple[bytes, ...]:
        return (self.encode_message(message),)

    def _should_compress(self, mtype: MessageType, body: bytes) -> bool:
        if len(body) < MIN_COMPRESS_SIZE or self.compression == Compression.NEVER:
            return False
        return mtype != MessageType.RESPONSE or self.compression == Compression.ALWAYS

    def parse_buffered(
        self, buf: ReceiveBuffer, max_frame_size: int = L.MAX_FRAME_SIZE
    ) -> tuple[Message, int] | None:
        return self.parse_frame(buf.contiguous(), max_frame_size)

    def parse_frame(
        self, buf: bytes | bytearray, max_frame_size: int = L.MAX_FRAME_SIZE
    ) -> tuple[Message, int] | None:
        if len(buf) < U16.size:
            return None
        (header_len,) = U16.unpack_from(buf)
        if header_len > MAX_HEADER_SIZE:  # also catches a negative int16
            raise RemoteProtocolError(f"BEP header of {header_len} bytes is not a header")
        body_at = U16.size + header_len + U32.size
        if len(buf) < body_at:
            return None
        header = _parse(pb.Header, bytes(buf[U16.size : U16.size + header_len]), "Header")
        (body_len,) = U32.unpack_from(buf, U16.size + header_len)
        if body_len > max_frame_size:  # also catches a negative int32
            raise RemoteProtocolError(
                f"message of {body_len} bytes exceeds the limit of {max_frame_size}"
            )
        try:
            mtype = MessageType(header.type)
        except ValueError:
            raise RemoteProtocolError(f"unknown message type {header.type}") from None
        end = body_at + body_len
        if len(buf) < end:
            return None
        body = bytes(buf[body_at:end])
        if header.compression == COMPRESSION_LZ4:
            body = _decompress(body, max_frame_size)
            self.compressed_received += 1
        elif header.compression != COMPRESSION_NONE:
            raise RemoteProtocolError(f"unknown compression {header.compression}")
        message = _parse(_CLASS_OF[mtype], body, mtype.name)
        try:
            if mtype in (MessageType.INDEX, MessageType.INDEX_UPDATE):
                return _index_message(mtype, message), end
            return wire_schema.from_plain(mtype, _FROM_PB[mtype](message)), end
        except Invalid as exc:
            raise RemoteProtocolError(f"invalid {exc}") from None


def _parse(cls: Any, data: bytes, what: str) -> Any:
    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise RemoteProtocolError(f"{what}: malformed protobuf ({exc})") from None


def _decompress(body: bytes, limit: int) -> bytes:
    if len(body) < U32.size:
        raise RemoteProtocolError("LZ4 body shorter than its length prefix")
    (size,) = U32.unpack_from(body)
    if size > limit:
        raise RemoteProtocolError(f"LZ4 body claims {size} bytes, more than {limit}")
    try:
        data = lz4.block.decompress(body[U32.size :], uncompressed_size=size)
    except lz4.block.LZ4BlockError as exc:
        raise RemoteProtocolError(f"malformed LZ4 body ({exc})") from None
    if len(data) != size:
        raise RemoteProtocolError(f"LZ4 body is {len(data)} bytes, its prefix says {size}")
    return data


def _text(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{path}: {raw[:64]!r} is not UTF-8") from None


def _index_message(mtype: MessageType, message: Any) -> Message:
    """An Index or IndexUpdate whose entries are checked one by one: an entry Syncthing
    allows but this device cannot store (a backslash or a control character in its
    name, a name that is not UTF-8) becomes an ``Unsupported`` note instead of failing
    the whole message; anything Syncthing itself would refuse is still an error."""
    what = mtype.name.title().replace("_", "")
    if len(message.files) > L.MAX_FILES_PER_INDEX:
        raise Invalid(f"{what}.files", f"{len(message.files)} entries, more than the limit")
    files: list[FileInfo] = []
    unsupported: list[Unsupported] = []
    for i, entry in enumerate(message.files):
        path = f"{what}.files[{i}]"
        reason = _unstorable(entry)
        if reason is not None:
            unsupported.append(Unsupported(entry.name.decode("utf-8", "backslashreplace"), reason))
            continue
        files.append(wire_fileinfo.file_info_from_plain(_file_from_pb(entry, path), path))
    envelope = wire_schema.from_plain(
        mtype, {**_FROM_PB[mtype](_EMPTY_OF[mtype]), **_envelope(message)}
    )
    assert isinstance(envelope, Index | IndexUpdate)
    return replace(envelope, files=tuple(files), unsupported=tuple(unsupported))


def _envelope(message: Any) -> dict[str, Any]:
    plain = {"folder": message.folder, "last_sequence": message.last_sequence}
    if hasattr(message, "prev_sequence"):
        plain["prev_sequence"] = message.prev_sequence
    return plain


def _unstorable(entry: Any) -> str | None:
    """Why ``entry`` cannot be stored here although Syncthing accepts it, or None."""
    try:
        name = entry.name.decode("utf-8")
    except UnicodeDecodeError:
        return "its name is not UTF-8"
    if not _syncthing_accepts(name):
        return None  # a protocol error: the checks that follow name it
    try:
        validate_name(name)
    except UnsafePathError as exc:
        return str(exc)
    try:
        entry.symlink_target.decode("utf-8")
    except UnicodeDecodeError:
        return "its symlink target is not UTF-8"
    return None


def _syncthing_accepts(name: str) -> bool:
    """Syncthing's own name rule (checkFilename): clean, relative, not '.' or '..'."""
    if name in ("", ".", "..") or name.startswith(("/", "../")):
        return False
    return posixpath.normpath(name) == name


# -- protobuf -> plain (the form wire_schema.from_plain checks) ------------------------------------


def _vector_from_pb(vector: Any) -> list[list[int]]:
    return [[c.id, c.value] for c in vector.counters]


def _file_from_pb(f: Any, path: str) -> dict[str, Any]:
    ftype = int(FileType.SYMLINK) if f.type in _LEGACY_SYMLINK_TYPES else f.type
    size = f.size
    if ftype == FileType.DIRECTORY and size == 128:  # what old peers sent for directories
        size = 0
    block_size = f.block_size
    if block_size == 0 and ftype == FileType.FILE and not f.deleted and f.blocks:
        block_size = MIN_BLOCK_SIZE  # BEP: missing means 128 KiB
    return {
        "name": _text(f.name, f"{path}.name"),
        "type": ftype,
        "size": size,
        "permissions": f.permissions,
        "modified_ns": max(f.modified_s * _NS + f.modified_ns, 0),
        "modified_by": f.modified_by,
        "deleted": f.deleted,
        "invalid": f.invalid,
        "no_permissions": f.no_permissions,
        "version": _vector_from_pb(f.version),
        "sequence": f.sequence,
        "block_size": block_size,
        "blocks": [[b.offset, b.size, b.hash] for b in f.blocks],
        "symlink_target": _text(f.symlink_target, f"{path}.symlink_target"),
    }


def _files_from_pb(files: Any, path: str) -> list[dict[str, Any]]:
    return [_file_from_pb(f, f"{path}[{i}]") for i, f in enumerate(files)]


def _cluster_config_from_pb(m: Any) -> dict[str, Any]:
    return {
        "folders": [
            {
                "id": f.id,
                "label": f.label,
                "type": f.type,
                "paused": f.paused != 0,
                "devices": [
                    {
                        "id": d.id,
                        "name": d.name,
                        "addresses": list(d.addresses),
                        "compression": d.compression,
                        "cert_name": d.cert_name,
                        "max_sequence": d.max_sequence,
                        "introducer": d.introducer,
                        "skip_introduction_removals": d.skip_introduction_removals,
                        "index_id": d.index_id,
                    }
                    for d in f.devices
                ],
            }
            for f in m.folders
        ]
    }


def _index_from_pb(m: Any) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "files": _files_from_pb(m.files, "Index.files"),
        "last_sequence": m.last_sequence,
    }


def _index_update_from_pb(m: Any) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "files": _files_from_pb(m.files, "IndexUpdate.files"),
        "prev_sequence": m.prev_sequence,
        "last_sequence": m.last_sequence,
    }


def _request_from_pb(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "folder": m.folder,
        "name": _text(m.name, "Request.name"),
        "offset": m.offset,
        "size": m.size,
        "hash": m.hash,
        "from_temporary": m.from_temporary,
        "block_no": m.block_no,
    }


def _progress_from_pb(m: Any) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "updates": [
            {
                "update_type": u.update_type,
                "name": _text(u.name, f"DownloadProgress.updates[{i}].name"),
                "version": _vector_from_pb(u.version),
                "block_indexes": list(u.block_indexes),
                "block_size": u.block_size,
            }
            for i, u in enumerate(m.updates)
        ],
    }


_EMPTY_OF = {MessageType.INDEX: pb.Index(), MessageType.INDEX_UPDATE: pb.IndexUpdate()}

_FROM_PB: dict[MessageType, Any] = {
    MessageType.CLUSTER_CONFIG: _cluster_config_from_pb,
    MessageType.INDEX: _index_from_pb,
    MessageType.INDEX_UPDATE: _index_update_from_pb,
    MessageType.REQUEST: _request_from_pb,
    MessageType.RESPONSE: lambda m: {"id": m.id, "data": m.data, "code": m.code},
    MessageType.DOWNLOAD_PROGRESS: _progress_from_pb,
    MessageType.PING: lambda m: {},
    MessageType.CLOSE: lambda m: {"reason": m.reason},
}


# -- plain -> protobuf --------------------------------------------------------------------------


def _vector_to_pb(target: Any, counters: list[list[int]]) -> None:
    for cid, value in counters:
        target.counters.add(id=cid, value=value)


def _file_to_pb(target: Any, f: dict[str, Any]) -> None:
    item = target.add(
        name=f["name"].encode("utf-8"),
        type=f["type"],
        size=f["size"],
        permissions=f["permissions"],
        modified_s=f["modified_ns"] // _NS,
        modified_ns=f["modified_ns"] % _NS,
        modified_by=f["modified_by"],
        deleted=f["deleted"],
        invalid=f["invalid"],
        no_permissions=f["no_permissions"],
        sequence=f["sequence"],
        block_size=f["block_size"],
        symlink_target=f["symlink_target"].encode("utf-8"),
    )
    _vector_to_pb(item.version, f["version"])
    if f["blocks"]:
        digest = hashlib.sha256()
        for offset, size, block_hash in f["blocks"]:
            item.blocks.add(offset=offset, size=size, hash=block_hash)
            digest.update(block_hash)
        item.blocks_hash = digest.digest()


def _cluster_config_to_pb(plain: dict[str, Any]) -> Any:
    message = pb.ClusterConfig()
    for f in plain["folders"]:
        folder = message.folders.add(
            id=f["id"],
            label=f["label"],
            type=f["type"],
            paused=int(f["paused"]),
            # We neither send nor use DownloadProgress on BEP: ask peers not to send it.
            disable_temp_indexes=True,
        )
        for d in f["devices"]:
            folder.devices.add(**d)
    return message


def _index_to_pb(plain: dict[str, Any], cls: Any) -> Any:
    message = cls(folder=plain["folder"], last_sequence=plain["last_sequence"])
    if "prev_sequence" in plain:
        message.prev_sequence = plain["prev_sequence"]
    for f in plain["files"]:
        _file_to_pb(message.files, f)
    return message


def _request_to_pb(plain: dict[str, Any]) -> Any:
    return pb.Request(**{**plain, "name": plain["name"].encode("utf-8")})


def _progress_to_pb(plain: dict[str, Any]) -> Any:
    message = pb.DownloadProgress(folder=plain["folder"])
    for u in plain["updates"]:
        update = message.updates.add(
            update_type=u["update_type"],
            name=u["name"].encode("utf-8"),
            block_indexes=u["block_indexes"],
            block_size=u["block_size"],
        )
        _vector_to_pb(update.version, u["version"])
    return message


_TO_PB: dict[MessageType, Any] = {
    MessageType.CLUSTER_CONFIG: _cluster_config_to_pb,
    MessageType.INDEX: lambda p: _index_to_pb(p, pb.Index),
    MessageType.INDEX_UPDATE: lambda p: _index_to_pb(p, pb.IndexUpdate),
    MessageType.REQUEST: _request_to_pb,
    MessageType.RESPONSE: lambda p: pb.Response(**p),
    MessageType.DOWNLOAD_PROGRESS: _progress_to_pb,
    MessageType.PING: lambda p: pb.Ping(),
    MessageType.CLOSE: lambda p: pb.Close(**p),
}
