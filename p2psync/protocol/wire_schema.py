"""Messages <-> plain msgpack values, checking every type and range on the way in.

Structs are msgpack maps keyed by field name: every field listed here is required,
unknown keys are ignored (room for fields added later). BlockInfo is the array
``[offset, size, hash]`` and a version counter the array ``[id, value]``, because there
are many of them. ``from_plain`` raises ``Invalid``; the codec decides whether that is
the peer's fault or ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import limits as L
from .fileinfo import HASH_SIZE, BlockInfo, FileInfo, FileType, is_legal_block_size
from .messages import (
    Close,
    ClusterConfig,
    Compression,
    DownloadProgress,
    ErrorCode,
    FileDownloadProgressUpdate,
    Folder,
    FolderDevice,
    FolderType,
    Hello,
    Index,
    IndexUpdate,
    Message,
    MessageType,
    Ping,
    Request,
    Response,
    UpdateType,
)
from .validate import Invalid, check_file_info, check_name
from .vector import Counter, Vector

E = TypeVar("E", bound=int)

# -- primitive readers: each returns the value or raises Invalid naming the path ----------


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if type(v) is not int:  # bool is an int subclass, and floats are not integers
        raise Invalid(path, f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise Invalid(path, f"{v} out of range {lo}..{hi}")
    return v


def _uint64(v: Any, path: str) -> int:
    return _int(v, path, 0, L.UINT64_MAX)


def _seq(v: Any, path: str) -> int:
    return _int(v, path, 0, L.INT64_MAX)


def _bool(v: Any, path: str) -> bool:
    if type(v) is not bool:
        raise Invalid(path, f"expected a boolean, got {type(v).__name__}")
    return v


def _str(v: Any, path: str, max_bytes: int, *, nonempty: bool = False) -> str:
    if type(v) is not str:
        raise Invalid(path, f"expected a string, got {type(v).__name__}")
    try:
        size = len(v.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid(path, "not valid UTF-8 (surrogates)") from None
    if size > max_bytes:
        raise Invalid(path, f"{size} bytes, longer than {max_bytes}")
    if nonempty and not v:
        raise Invalid(path, "must not be empty")
    return v


def _ident(v: Any, path: str, max_bytes: int) -> str:
    """A non-empty identifier without control characters (folder IDs)."""
    s = _str(v, path, max_bytes, nonempty=True)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        raise Invalid(path, f"{s!r} contains control characters")
    return s


def _bytes(v: Any, path: str, max_len: int, exact: int | None = None) -> bytes:
    if type(v) is not bytes:
        raise Invalid(path, f"expected bytes, got {type(v).__name__}")
    if exact is not None and len(v) != exact:
        raise Invalid(path, f"expected {exact} bytes, got {len(v)}")
    if len(v) > max_len:
        raise Invalid(path, f"{len(v)} bytes, longer than {max_len}")
    return v


def _enum(v: Any, path: str, cls: type[E]) -> E:
    if type(v) is not int:
        raise Invalid(path, f"expected an integer, got {type(v).__name__}")
    try:
        return cls(v)
    except ValueError:
        raise Invalid(path, f"{v} is not a {cls.__name__}") from None


def _array(v: Any, path: str, max_len: int) -> tuple[Any, ...] | list[Any]:
    if type(v) is not tuple and type(v) is not list:
        raise Invalid(path, f"expected an array, got {type(v).__name__}")
    if len(v) > max_len:
        raise Invalid(path, f"{len(v)} entries, more than {max_len}")
    return v


def _struct(v: Any, path: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if type(v) is not dict:
        raise Invalid(path, f"expected a map, got {type(v).__name__}")
    if len(v) > L.MAX_STRUCT_KEYS:
        raise Invalid(path, f"{len(v)} keys, more than {L.MAX_STRUCT_KEYS}")
    for k in keys:
        if k not in v:
            raise Invalid(f"{path}.{k}" if path else k, "missing")
    return v


def _p(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- shared pieces ----------------------------------------------------------------------


def vector_to_plain(vec: Vector) -> list[list[int]]:
    return [[c.id, c.value] for c in vec]


def vector_from_plain(v: Any, path: str) -> Vector:
    """Counters sorted by id, ids unique, values non-zero: the canonical form."""
    items = _array(v, path, L.MAX_COUNTERS)
    out: list[Counter] = []
    prev = -1
    for i, pair in enumerate(items):
        p = f"{path}[{i}]"
        pair = _array(pair, p, 2)
        if len(pair) != 2:
            raise Invalid(p, "a counter is [id, value]")
        cid = _uint64(pair[0], f"{p}.id")
        value = _uint64(pair[1], f"{p}.value")
        if value == 0:
            raise Invalid(f"{p}.value", "zero counters are never sent")
        if cid == prev:
            raise Invalid(f"{p}.id", f"duplicate counter id {cid}")
        if cid < prev:
            raise Invalid(f"{p}.id", "counters must be sorted by id")
        prev = cid
        out.append(Counter(cid, value))
    return tuple(out)


_FILE_KEYS = (
    "name", "type", "size", "permissions", "modified_ns", "modified_by", "deleted",
    "invalid", "no_permissions", "version", "sequence", "block_size", "blocks",
    "symlink_target",
)  # fmt: skip


def file_info_to_plain(fi: FileInfo) -> dict[str, Any]:
    """Local-only fields (inode, local_flags) are never sent."""
    return {
        "name": fi.name,
        "type": int(fi.type),
        "size": fi.size,
        "permissions": fi.permissions,
        "modified_ns": fi.modified_ns,
        "modified_by": fi.modified_by,
        "deleted": fi.deleted,
        "invalid": fi.invalid,
        "no_permissions": fi.no_permissions,
        "version": vector_to_plain(fi.version),
        "sequence": fi.sequence,
        "block_size": fi.block_size,
        "blocks": [[b.offset, b.size, b.hash] for b in fi.blocks],
        "symlink_target": fi.symlink_target,
    }


def _blocks_from_plain(v: Any, path: str) -> tuple[BlockInfo, ...]:
    items = _array(v, path, L.MAX_BLOCKS_PER_FILE)
    out = []
    for i, b in enumerate(items):
        if (type(b) is not tuple and type(b) is not list) or len(b) != 3:
            raise Invalid(f"{path}[{i}]", "a block is [offset, size, hash]")
        offset, size, h = b
        # Inline the common case: this loop runs for every block of every file.
        if type(offset) is not int or not 0 <= offset <= L.INT64_MAX:
            _seq(offset, f"{path}[{i}].offset")
        if type(size) is not int or not 0 <= size <= L.INT32_MAX:
            _int(size, f"{path}[{i}].size", 0, L.INT32_MAX)
        if type(h) is not bytes or len(h) != HASH_SIZE:
            _bytes(h, f"{path}[{i}].hash", HASH_SIZE, exact=HASH_SIZE)
        out.append(BlockInfo(offset, size, h))
    return tuple(out)


def file_info_from_plain(v: Any, path: str) -> FileInfo:
    """A FileInfo from its plain form; Invalid naming the path of whatever is wrong."""
    fi = _file_info_fast(v)
    if fi is None:
        return _file_info_checked(v, path)  # finds (and names) the problem
    check_file_info(fi, path)
    return fi


_FILE_TYPE_OF = {int(t): t for t in FileType}
_SEQUENCE_TYPES = (list, tuple)
# BlockInfo and FileInfo are frozen dataclasses: their __init__ sets each field through
# object.__setattr__, which cost more than all the checks of a block. The fast path
# fills the slots directly (the values __init__ would set; every slot, defaults included).
_new = object.__new__
_FAST_FILE_FIELDS = (
    "name", "type", "size", "permissions", "modified_ns", "modified_by", "deleted",
    "invalid", "no_permissions", "version", "sequence", "block_size", "blocks",
    "symlink_target", "inode", "local_flags",
)  # fmt: skip
assert set(_FAST_FILE_FIELDS) == set(FileInfo.__slots__), "update _file_info_fast"
_BLOCK_SLOTS = tuple(getattr(BlockInfo, name).__set__ for name in ("offset", "size", "hash"))
_FILE_SLOTS = tuple(getattr(FileInfo, name).__set__ for name in _FAST_FILE_FIELDS)


def _file_info_fast(v: Any) -> FileInfo | None:
    """``_file_info_checked`` for entries that pass every check, without building an
    error path per field (an index of 10,000 entries spends most of its decoding time
    here); None as soon as anything is off, and the checked version then says what."""
    if type(v) is not dict or len(v) > L.MAX_STRUCT_KEYS:
        return None
    try:
        name, ftype, size = v["name"], v["type"], v["size"]
        permissions, modified_ns, modified_by = v["permissions"], v["modified_ns"], v["modified_by"]
        deleted, invalid, no_permissions = v["deleted"], v["invalid"], v["no_permissions"]
        version, sequence, block_size = v["version"], v["sequence"], v["block_size"]
        blocks, target = v["blocks"], v["symlink_target"]
    except KeyError:
        return None
    if (
        type(name) is not str
        or type(target) is not str
        or type(ftype) is not int
        or type(size) is not int
        or type(permissions) is not int
        or type(modified_ns) is not int
        or type(modified_by) is not int
        or type(sequence) is not int
        or type(block_size) is not int
        or type(deleted) is not bool
        or type(invalid) is not bool
        or type(no_permissions) is not bool
        or type(version) not in _SEQUENCE_TYPES
        or type(blocks) not in _SEQUENCE_TYPES
    ):
        return None
    file_type = _FILE_TYPE_OF.get(ftype)
    if (
        file_type is None
        or not 0 <= size <= L.INT64_MAX
        or not 0 <= permissions <= L.UINT32_MAX
        or not L.INT64_MIN <= modified_ns <= L.INT64_MAX
        or not 0 <= modified_by <= L.UINT64_MAX
        or not 0 <= sequence <= L.INT64_MAX
        or not 0 <= block_size <= L.INT32_MAX
        or len(version) > L.MAX_COUNTERS
        or len(blocks) > L.MAX_BLOCKS_PER_FILE
        or "\x00" in target
    ):
        return None
    try:
        if len(name.encode("utf-8")) > L.MAX_NAME_BYTES or (
            target and len(target.encode("utf-8")) > L.MAX_SYMLINK_TARGET_BYTES
        ):
            return None
    except UnicodeEncodeError:
        return None
    counters = []
    previous = -1
    for pair in version:
        if type(pair) not in _SEQUENCE_TYPES or len(pair) != 2:
            return None
        cid, value = pair
        if (
            type(cid) is not int
            or type(value) is not int
            or not previous < cid <= L.UINT64_MAX
            or not 0 < value <= L.UINT64_MAX
        ):
            return None
        previous = cid
        counters.append(Counter(cid, value))
    block_infos = []
    set_offset, set_size, set_hash = _BLOCK_SLOTS
    for b in blocks:
        if type(b) not in _SEQUENCE_TYPES or len(b) != 3:
            return None
        offset, bsize, h = b
        if (
            type(offset) is not int
            or type(bsize) is not int
            or type(h) is not bytes
            or not 0 <= offset <= L.INT64_MAX
            or not 0 <= bsize <= L.INT32_MAX
            or len(h) != HASH_SIZE
        ):
            return None
        block = _new(BlockInfo)
        set_offset(block, offset)
        set_size(block, bsize)
        set_hash(block, h)
        block_infos.append(block)
    fi = _new(FileInfo)
    values = (
        name, file_type, size, permissions, modified_ns, modified_by, deleted, invalid,
        no_permissions, tuple(counters), sequence, block_size, tuple(block_infos), target,
        0, 0,  # inode, local_flags: never on the wire
    )  # fmt: skip
    for set_slot, value in zip(_FILE_SLOTS, values, strict=True):
        set_slot(fi, value)
    return fi


def _file_info_checked(v: Any, path: str) -> FileInfo:
    d = _struct(v, path, _FILE_KEYS)
    fi = FileInfo(
        name=_str(d["name"], f"{path}.name", L.MAX_NAME_BYTES),
        type=_enum(d["type"], f"{path}.type", FileType),
        size=_seq(d["size"], f"{path}.size"),
        permissions=_int(d["permissions"], f"{path}.permissions", 0, L.UINT32_MAX),
        modified_ns=_int(d["modified_ns"], f"{path}.modified_ns", L.INT64_MIN, L.INT64_MAX),
        modified_by=_uint64(d["modified_by"], f"{path}.modified_by"),
        deleted=_bool(d["deleted"], f"{path}.deleted"),
        invalid=_bool(d["invalid"], f"{path}.invalid"),
        no_permissions=_bool(d["no_permissions"], f"{path}.no_permissions"),
        version=vector_from_plain(d["version"], f"{path}.version"),
        sequence=_seq(d["sequence"], f"{path}.sequence"),
        block_size=_int(d["block_size"], f"{path}.block_size", 0, L.INT32_MAX),
        blocks=_blocks_from_plain(d["blocks"], f"{path}.blocks"),
        symlink_target=_str(
            d["symlink_target"], f"{path}.symlink_target", L.MAX_SYMLINK_TARGET_BYTES
        ),
    )
    if "\x00" in fi.symlink_target:
        raise Invalid(f"{path}.symlink_target", "contains NUL")
    check_file_info(fi, path)
    return fi


def _files_from_plain(v: Any, path: str) -> tuple[FileInfo, ...]:
    items = _array(v, path, L.MAX_FILES_PER_INDEX)
    return tuple(file_info_from_plain(f, f"{path}[{i}]") for i, f in enumerate(items))


# -- Hello --------------------------------------------------------------------------------


def hello_to_plain(m: Hello) -> dict[str, Any]:
    return {
        "device_name": m.device_name,
        "client_name": m.client_name,
        "client_version": m.client_version,
        "timestamp": m.timestamp,
    }


def hello_from_plain(v: Any) -> Hello:
    d = _struct(v, "Hello", ("device_name", "client_name", "client_version", "timestamp"))
    return Hello(
        device_name=_str(d["device_name"], "Hello.device_name", L.MAX_SHORT_STRING_BYTES),
        client_name=_str(d["client_name"], "Hello.client_name", L.MAX_SHORT_STRING_BYTES),
        client_version=_str(d["client_version"], "Hello.client_version", L.MAX_SHORT_STRING_BYTES),
        timestamp=_seq(d["timestamp"], "Hello.timestamp"),
    )


# -- ClusterConfig --------------------------------------------------------------------------

_DEVICE_KEYS = (
    "id", "name", "addresses", "compression", "cert_name", "max_sequence", "introducer",
    "skip_introduction_removals", "index_id",
)  # fmt: skip


def _cluster_config_to_plain(m: ClusterConfig) -> dict[str, Any]:
    return {
        "folders": [
            {
                "id": f.id,
                "label": f.label,
                "type": int(f.type),
                "paused": f.paused,
                "devices": [
                    {
                        "id": d.id,
                        "name": d.name,
                        "addresses": list(d.addresses),
                        "compression": int(d.compression),
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


def _device_from_plain(v: Any, path: str) -> FolderDevice:
    d = _struct(v, path, _DEVICE_KEYS)
    addrs = _array(d["addresses"], f"{path}.addresses", L.MAX_ADDRESSES)
    return FolderDevice(
        id=_bytes(d["id"], f"{path}.id", 32, exact=32),
        name=_str(d["name"], f"{path}.name", L.MAX_SHORT_STRING_BYTES),
        addresses=tuple(
            _str(a, f"{path}.addresses[{i}]", L.MAX_ADDRESS_BYTES, nonempty=True)
            for i, a in enumerate(addrs)
        ),
        compression=_enum(d["compression"], f"{path}.compression", Compression),
        cert_name=_str(d["cert_name"], f"{path}.cert_name", L.MAX_SHORT_STRING_BYTES),
        max_sequence=_seq(d["max_sequence"], f"{path}.max_sequence"),
        introducer=_bool(d["introducer"], f"{path}.introducer"),
        skip_introduction_removals=_bool(
            d["skip_introduction_removals"], f"{path}.skip_introduction_removals"
        ),
        index_id=_uint64(d["index_id"], f"{path}.index_id"),
    )


def _folder_from_plain(v: Any, path: str) -> Folder:
    d = _struct(v, path, ("id", "label", "type", "paused", "devices"))
    items = _array(d["devices"], f"{path}.devices", L.MAX_DEVICES_PER_FOLDER)
    devices = tuple(_device_from_plain(x, f"{path}.devices[{i}]") for i, x in enumerate(items))
    if len({dev.id for dev in devices}) != len(devices):
        raise Invalid(f"{path}.devices", "a device is listed twice")
    return Folder(
        id=_ident(d["id"], f"{path}.id", L.MAX_ID_BYTES),
        label=_str(d["label"], f"{path}.label", L.MAX_LABEL_BYTES),
        type=_enum(d["type"], f"{path}.type", FolderType),
        paused=_bool(d["paused"], f"{path}.paused"),
        devices=devices,
    )


def _cluster_config_from_plain(v: Any) -> ClusterConfig:
    d = _struct(v, "ClusterConfig", ("folders",))
    items = _array(d["folders"], "ClusterConfig.folders", L.MAX_FOLDERS)
    folders = tuple(
        _folder_from_plain(x, f"ClusterConfig.folders[{i}]") for i, x in enumerate(items)
    )
    if len({f.id for f in folders}) != len(folders):
        raise Invalid("ClusterConfig.folders", "a folder is listed twice")
    return ClusterConfig(folders)


# -- Index, IndexUpdate ----------------------------------------------------------------------


def _index_to_plain(m: Index) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "files": [file_info_to_plain(f) for f in m.files],
        "last_sequence": m.last_sequence,
    }


def _index_from_plain(v: Any) -> Index:
    d = _struct(v, "Index", ("folder", "files", "last_sequence"))
    return Index(
        folder=_ident(d["folder"], "Index.folder", L.MAX_ID_BYTES),
        files=_files_from_plain(d["files"], "Index.files"),
        last_sequence=_seq(d["last_sequence"], "Index.last_sequence"),
    )


def _index_update_to_plain(m: IndexUpdate) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "files": [file_info_to_plain(f) for f in m.files],
        "prev_sequence": m.prev_sequence,
        "last_sequence": m.last_sequence,
    }


def _index_update_from_plain(v: Any) -> IndexUpdate:
    d = _struct(v, "IndexUpdate", ("folder", "files", "prev_sequence", "last_sequence"))
    return IndexUpdate(
        folder=_ident(d["folder"], "IndexUpdate.folder", L.MAX_ID_BYTES),
        files=_files_from_plain(d["files"], "IndexUpdate.files"),
        prev_sequence=_seq(d["prev_sequence"], "IndexUpdate.prev_sequence"),
        last_sequence=_seq(d["last_sequence"], "IndexUpdate.last_sequence"),
    )


# -- Request, Response ---------------------------------------------------------------------

_REQUEST_KEYS = (
    "id", "folder", "name", "offset", "size", "hash", "from_temporary", "block_no",
)  # fmt: skip


def _request_to_plain(m: Request) -> dict[str, Any]:
    return {k: getattr(m, k) for k in _REQUEST_KEYS}


def _request_from_plain(v: Any) -> Request:
    d = _struct(v, "Request", _REQUEST_KEYS)
    name = _str(d["name"], "Request.name", L.MAX_NAME_BYTES)
    check_name(name, "Request.name")
    return Request(
        id=_int(d["id"], "Request.id", 0, L.INT32_MAX),
        folder=_ident(d["folder"], "Request.folder", L.MAX_ID_BYTES),
        name=name,
        offset=_seq(d["offset"], "Request.offset"),
        size=_int(d["size"], "Request.size", 0, L.MAX_REQUEST_SIZE),
        hash=_bytes(d["hash"], "Request.hash", HASH_SIZE, exact=HASH_SIZE),
        from_temporary=_bool(d["from_temporary"], "Request.from_temporary"),
        block_no=_int(d["block_no"], "Request.block_no", 0, L.INT32_MAX),
    )


def _response_to_plain(m: Response) -> dict[str, Any]:
    return {"id": m.id, "data": m.data, "code": int(m.code)}


def _response_from_plain(v: Any) -> Response:
    d = _struct(v, "Response", ("id", "data", "code"))
    r = Response(
        id=_int(d["id"], "Response.id", 0, L.INT32_MAX),
        data=_bytes(d["data"], "Response.data", L.MAX_REQUEST_SIZE),
        code=_enum(d["code"], "Response.code", ErrorCode),
    )
    if r.code != ErrorCode.NO_ERROR and r.data:
        raise Invalid("Response.data", f"an error response ({r.code.name}) carries no data")
    return r


# -- DownloadProgress ------------------------------------------------------------------------


def _download_progress_to_plain(m: DownloadProgress) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "updates": [
            {
                "update_type": int(u.update_type),
                "name": u.name,
                "version": vector_to_plain(u.version),
                "block_indexes": list(u.block_indexes),
                "block_size": u.block_size,
            }
            for u in m.updates
        ],
    }


def _progress_update_from_plain(v: Any, path: str) -> FileDownloadProgressUpdate:
    d = _struct(v, path, ("update_type", "name", "version", "block_indexes", "block_size"))
    name = _str(d["name"], f"{path}.name", L.MAX_NAME_BYTES)
    check_name(name, f"{path}.name")
    items = _array(d["block_indexes"], f"{path}.block_indexes", L.MAX_BLOCKS_PER_FILE)
    u = FileDownloadProgressUpdate(
        update_type=_enum(d["update_type"], f"{path}.update_type", UpdateType),
        name=name,
        version=vector_from_plain(d["version"], f"{path}.version"),
        block_indexes=tuple(
            _int(x, f"{path}.block_indexes[{i}]", 0, L.MAX_BLOCKS_PER_FILE - 1)
            for i, x in enumerate(items)
        ),
        block_size=_int(d["block_size"], f"{path}.block_size", 0, L.INT32_MAX),
    )
    if u.update_type == UpdateType.FORGET:
        if u.block_indexes:
            raise Invalid(f"{path}.block_indexes", "a FORGET update lists no blocks")
    else:
        if not u.version:
            raise Invalid(f"{path}.version", "an APPEND update names a version")
        if not is_legal_block_size(u.block_size):
            raise Invalid(f"{path}.block_size", f"{u.block_size} is not a legal block size")
    return u


def _download_progress_from_plain(v: Any) -> DownloadProgress:
    d = _struct(v, "DownloadProgress", ("folder", "updates"))
    items = _array(d["updates"], "DownloadProgress.updates", L.MAX_PROGRESS_UPDATES)
    return DownloadProgress(
        folder=_ident(d["folder"], "DownloadProgress.folder", L.MAX_ID_BYTES),
        updates=tuple(
            _progress_update_from_plain(x, f"DownloadProgress.updates[{i}]")
            for i, x in enumerate(items)
        ),
    )


# -- Ping, Close ---------------------------------------------------------------------------


def _ping_from_plain(v: Any) -> Ping:
    _struct(v, "Ping", ())
    return Ping()


def _close_from_plain(v: Any) -> Close:
    d = _struct(v, "Close", ("reason",))
    return Close(_str(d["reason"], "Close.reason", L.MAX_REASON_BYTES))


# -- dispatch ------------------------------------------------------------------------------

_TO_PLAIN: dict[MessageType, Callable[[Any], dict[str, Any]]] = {
    MessageType.CLUSTER_CONFIG: _cluster_config_to_plain,
    MessageType.INDEX: _index_to_plain,
    MessageType.INDEX_UPDATE: _index_update_to_plain,
    MessageType.REQUEST: _request_to_plain,
    MessageType.RESPONSE: _response_to_plain,
    MessageType.DOWNLOAD_PROGRESS: _download_progress_to_plain,
    MessageType.PING: lambda m: {},
    MessageType.CLOSE: lambda m: {"reason": m.reason},
}

_FROM_PLAIN: dict[MessageType, Callable[[Any], Message]] = {
    MessageType.CLUSTER_CONFIG: _cluster_config_from_plain,
    MessageType.INDEX: _index_from_plain,
    MessageType.INDEX_UPDATE: _index_update_from_plain,
    MessageType.REQUEST: _request_from_plain,
    MessageType.RESPONSE: _response_from_plain,
    MessageType.DOWNLOAD_PROGRESS: _download_progress_from_plain,
    MessageType.PING: _ping_from_plain,
    MessageType.CLOSE: _close_from_plain,
}


def to_plain(mtype: MessageType, message: Message) -> dict[str, Any]:
    """The msgpack-ready value of ``message``. Unchecked: pass it through from_plain."""
    return _TO_PLAIN[mtype](message)


def from_plain(mtype: MessageType, value: Any) -> Message:
    """The message of type ``mtype`` that ``value`` encodes; raises Invalid."""
    return _FROM_PLAIN[mtype](value)
