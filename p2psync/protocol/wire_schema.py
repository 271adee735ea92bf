"""Messages <-> plain msgpack values, checking every type and range on the way in.

Structs are msgpack maps keyed by field name: every field listed here is required,
unknown keys are ignored (room for fields added later). BlockInfo is the array
``[offset, size, hash]`` and a version counter the array ``[id, value]``, because there
are many of them. ``from_plain`` raises ``Invalid``; the codec decides whether that is
the peer's fault or ours. FileInfo and version vectors are ``wire_fileinfo.py``; the
primitive readers ``plain_read.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import limits as L
from .fileinfo import HASH_SIZE, is_legal_block_size
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
from .plain_read import (
    read_array,
    read_bool,
    read_bytes,
    read_enum,
    read_ident,
    read_int,
    read_seq,
    read_str,
    read_struct,
    read_uint64,
)
from .validate import Invalid, check_name
from .wire_fileinfo import (
    file_info_to_plain,
    files_from_plain,
    vector_from_plain,
    vector_to_plain,
)

# -- Hello --------------------------------------------------------------------------------


def hello_to_plain(m: Hello) -> dict[str, Any]:
    return {
        "device_name": m.device_name,
        "client_name": m.client_name,
        "client_version": m.client_version,
        "timestamp": m.timestamp,
    }


def hello_from_plain(v: Any) -> Hello:
    d = read_struct(v, "Hello", ("device_name", "client_name", "client_version", "timestamp"))
    return Hello(
        device_name=read_str(d["device_name"], "Hello.device_name", L.MAX_SHORT_STRING_BYTES),
        client_name=read_str(d["client_name"], "Hello.client_name", L.MAX_SHORT_STRING_BYTES),
        client_version=read_str(
            d["client_version"], "Hello.client_version", L.MAX_SHORT_STRING_BYTES
        ),
        timestamp=read_seq(d["timestamp"], "Hello.timestamp"),
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
    d = read_struct(v, path, _DEVICE_KEYS)
    addrs = read_array(d["addresses"], f"{path}.addresses", L.MAX_ADDRESSES)
    return FolderDevice(
        id=read_bytes(d["id"], f"{path}.id", 32, exact=32),
        name=read_str(d["name"], f"{path}.name", L.MAX_SHORT_STRING_BYTES),
        addresses=tuple(
            read_str(a, f"{path}.addresses[{i}]", L.MAX_ADDRESS_BYTES, nonempty=True)
            for i, a in enumerate(addrs)
        ),
        compression=read_enum(d["compression"], f"{path}.compression", Compression),
        cert_name=read_str(d["cert_name"], f"{path}.cert_name", L.MAX_SHORT_STRING_BYTES),
        max_sequence=read_seq(d["max_sequence"], f"{path}.max_sequence"),
        introducer=read_bool(d["introducer"], f"{path}.introducer"),
        skip_introduction_removals=read_bool(
            d["skip_introduction_removals"], f"{path}.skip_introduction_removals"
        ),
        index_id=read_uint64(d["index_id"], f"{path}.index_id"),
    )


def _folder_from_plain(v: Any, path: str) -> Folder:
    d = read_struct(v, path, ("id", "label", "type", "paused", "devices"))
    items = read_array(d["devices"], f"{path}.devices", L.MAX_DEVICES_PER_FOLDER)
    devices = tuple(_device_from_plain(x, f"{path}.devices[{i}]") for i, x in enumerate(items))
    if len({dev.id for dev in devices}) != len(devices):
        raise Invalid(f"{path}.devices", "a device is listed twice")
    return Folder(
        id=read_ident(d["id"], f"{path}.id", L.MAX_ID_BYTES),
        label=read_str(d["label"], f"{path}.label", L.MAX_LABEL_BYTES),
        type=read_enum(d["type"], f"{path}.type", FolderType),
        paused=read_bool(d["paused"], f"{path}.paused"),
        devices=devices,
    )


def _cluster_config_from_plain(v: Any) -> ClusterConfig:
    d = read_struct(v, "ClusterConfig", ("folders",))
    items = read_array(d["folders"], "ClusterConfig.folders", L.MAX_FOLDERS)
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
    d = read_struct(v, "Index", ("folder", "files", "last_sequence"))
    return Index(
        folder=read_ident(d["folder"], "Index.folder", L.MAX_ID_BYTES),
        files=files_from_plain(d["files"], "Index.files"),
        last_sequence=read_seq(d["last_sequence"], "Index.last_sequence"),
    )


def _index_update_to_plain(m: IndexUpdate) -> dict[str, Any]:
    return {
        "folder": m.folder,
        "files": [file_info_to_plain(f) for f in m.files],
        "prev_sequence": m.prev_sequence,
        "last_sequence": m.last_sequence,
    }


def _index_update_from_plain(v: Any) -> IndexUpdate:
    d = read_struct(v, "IndexUpdate", ("folder", "files", "prev_sequence", "last_sequence"))
    return IndexUpdate(
        folder=read_ident(d["folder"], "IndexUpdate.folder", L.MAX_ID_BYTES),
        files=files_from_plain(d["files"], "IndexUpdate.files"),
        prev_sequence=read_seq(d["prev_sequence"], "IndexUpdate.prev_sequence"),
        last_sequence=read_seq(d["last_sequence"], "IndexUpdate.last_sequence"),
    )


# -- Request, Response ---------------------------------------------------------------------

_REQUEST_KEYS = (
    "id", "folder", "name", "offset", "size", "hash", "from_temporary", "block_no",
)  # fmt: skip


def _request_to_plain(m: Request) -> dict[str, Any]:
    return {k: getattr(m, k) for k in _REQUEST_KEYS}


def _request_from_plain(v: Any) -> Request:
    d = read_struct(v, "Request", _REQUEST_KEYS)
    name = read_str(d["name"], "Request.name", L.MAX_NAME_BYTES)
    check_name(name, "Request.name")
    return Request(
        id=read_int(d["id"], "Request.id", 0, L.INT32_MAX),
        folder=read_ident(d["folder"], "Request.folder", L.MAX_ID_BYTES),
        name=name,
        offset=read_seq(d["offset"], "Request.offset"),
        size=read_int(d["size"], "Request.size", 0, L.MAX_REQUEST_SIZE),
        hash=read_bytes(d["hash"], "Request.hash", HASH_SIZE, exact=HASH_SIZE),
        from_temporary=read_bool(d["from_temporary"], "Request.from_temporary"),
        block_no=read_int(d["block_no"], "Request.block_no", 0, L.INT32_MAX),
    )


def _response_to_plain(m: Response) -> dict[str, Any]:
    return {"id": m.id, "data": m.data, "code": int(m.code)}


def _response_from_plain(v: Any) -> Response:
    d = read_struct(v, "Response", ("id", "data", "code"))
    r = Response(
        id=read_int(d["id"], "Response.id", 0, L.INT32_MAX),
        data=read_bytes(d["data"], "Response.data", L.MAX_REQUEST_SIZE),
        code=read_enum(d["code"], "Response.code", ErrorCode),
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
    d = read_struct(v, path, ("update_type", "name", "version", "block_indexes", "block_size"))
    name = read_str(d["name"], f"{path}.name", L.MAX_NAME_BYTES)
    check_name(name, f"{path}.name")
    items = read_array(d["block_indexes"], f"{path}.block_indexes", L.MAX_BLOCKS_PER_FILE)
    u = FileDownloadProgressUpdate(
        update_type=read_enum(d["update_type"], f"{path}.update_type", UpdateType),
        name=name,
        version=vector_from_plain(d["version"], f"{path}.version"),
        block_indexes=tuple(
            read_int(x, f"{path}.block_indexes[{i}]", 0, L.MAX_BLOCKS_PER_FILE - 1)
            for i, x in enumerate(items)
        ),
        block_size=read_int(d["block_size"], f"{path}.block_size", 0, L.INT32_MAX),
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
    d = read_struct(v, "DownloadProgress", ("folder", "updates"))
    items = read_array(d["updates"], "DownloadProgress.updates", L.MAX_PROGRESS_UPDATES)
    return DownloadProgress(
        folder=read_ident(d["folder"], "DownloadProgress.folder", L.MAX_ID_BYTES),
        updates=tuple(
            _progress_update_from_plain(x, f"DownloadProgress.updates[{i}]")
            for i, x in enumerate(items)
        ),
    )


# -- Ping, Close ---------------------------------------------------------------------------


def _ping_from_plain(v: Any) -> Ping:
    read_struct(v, "Ping", ())
    return Ping()


def _close_from_plain(v: Any) -> Close:
    d = read_struct(v, "Close", ("reason",))
    return Close(read_str(d["reason"], "Close.reason", L.MAX_REASON_BYTES))


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
