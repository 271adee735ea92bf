"""Syncthing's BEP v1 messages as protobuf classes, built from a schema written here.

The schema follows Syncthing's ``bep.proto`` field numbers (1.19 and 2.x share them;
see ../shared/reference §3.4), built at import into a descriptor pool of our own, so no
generated code and no ``protoc`` step are needed. Two deliberate differences, both
wire-compatible: names and symlink targets are ``bytes`` (one entry that is not valid
UTF-8 must not make a whole Index undecodable), and enums are plain ``int32`` (an
unknown value reaches our checks instead of being dropped by the library). Fields we
never read (``platform``, ``encrypted``) are kept as opaque bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
}
_PACKAGE = "p2psync.bep"

# message name -> [(field name, number, type or message name, repeated?)]
_SCHEMA: dict[str, list[tuple[str, int, str, bool]]] = {
    "Hello": [
        ("device_name", 1, "string", False),
        ("client_name", 2, "string", False),
        ("client_version", 3, "string", False),
        ("num_connections", 4, "int32", False),
        ("timestamp", 5, "int64", False),
    ],
    "Header": [("type", 1, "int32", False), ("compression", 2, "int32", False)],
    "ClusterConfig": [("folders", 1, "Folder", True), ("secondary", 2, "bool", False)],
    "Folder": [
        ("id", 1, "string", False),
        ("label", 2, "string", False),
        ("type", 3, "int32", False),  # 1.x read_only (bool) shares the varint
        ("ignore_permissions", 4, "bool", False),
        ("ignore_delete", 5, "bool", False),
        ("disable_temp_indexes", 6, "bool", False),
        ("paused", 7, "int32", False),  # 1.x paused (bool), 2.x stop_reason (enum)
        ("devices", 16, "Device", True),
    ],
    "Device": [
        ("id", 1, "bytes", False),
        ("name", 2, "string", False),
        ("addresses", 3, "string", True),
        ("compression", 4, "int32", False),
        ("cert_name", 5, "string", False),
        ("max_sequence", 6, "int64", False),
        ("introducer", 7, "bool", False),
        ("index_id", 8, "uint64", False),
        ("skip_introduction_removals", 9, "bool", False),
        ("encryption_password_token", 10, "bytes", False),
    ],
    "Index": [
        ("folder", 1, "string", False),
        ("files", 2, "FileInfo", True),
        ("last_sequence", 3, "int64", False),
    ],
    "IndexUpdate": [
        ("folder", 1, "string", False),
        ("files", 2, "FileInfo", True),
        ("last_sequence", 3, "int64", False),
        ("prev_sequence", 4, "int64", False),
    ],
    "FileInfo": [
        ("name", 1, "bytes", False),
        ("type", 2, "int32", False),
        ("size", 3, "int64", False),
        ("permissions", 4, "uint32", False),
        ("modified_s", 5, "int64", False),
        ("deleted", 6, "bool", False),
        ("invalid", 7, "bool", False),
        ("no_permissions", 8, "bool", False),
        ("version", 9, "Vector", False),
        ("sequence", 10, "int64", False),
        ("modified_ns", 11, "int32", False),
        ("modified_by", 12, "uint64", False),
        ("block_size", 13, "int32", False),
        ("platform", 14, "bytes", False),
        ("blocks", 16, "BlockInfo", True),
        ("symlink_target", 17, "bytes", False),
        ("blocks_hash", 18, "bytes", False),
        ("encrypted", 19, "bytes", False),
        ("previous_blocks_hash", 20, "bytes", False),
    ],
    "BlockInfo": [
        ("offset", 1, "int64", False),
        ("size", 2, "int32", False),
        ("hash", 3, "bytes", False),
        ("weak_hash", 4, "uint32", False),  # 1.x only; reserved in 2.x
    ],
    "Vector": [("counters", 1, "Counter", True)],
    "Counter": [("id", 1, "uint64", False), ("value", 2, "uint64", False)],
    "Request": [
        ("id", 1, "int32", False),
        ("folder", 2, "string", False),
        ("name", 3, "bytes", False),
        ("offset", 4, "int64", False),
        ("size", 5, "int32", False),
        ("hash", 6, "bytes", False),
        ("from_temporary", 7, "bool", False),
        ("weak_hash", 8, "uint32", False),
        ("block_no", 9, "int32", False),
    ],
    "Response": [
        ("id", 1, "int32", False),
        ("data", 2, "bytes", False),
        ("code", 3, "int32", False),
    ],
    "DownloadProgress": [
        ("folder", 1, "string", False),
        ("updates", 2, "FileDownloadProgressUpdate", True),
    ],
    "FileDownloadProgressUpdate": [
        ("update_type", 1, "int32", False),
        ("name", 2, "bytes", False),
        ("version", 3, "Vector", False),
        ("block_indexes", 4, "int32", True),
        ("block_size", 5, "int32", False),
    ],
    "Ping": [],
    "Close": [("reason", 1, "string", False)],
}


def _build() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name="p2psync_bep.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _SCHEMA.items():
        msg = file.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            field = msg.field.add(
                name=field_name,
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if kind in _TYPES:
                field.type = _TYPES[kind]
                if repeated and kind != "string" and kind != "bytes":
                    field.options.packed = False  # as Syncthing's [packed = false]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _SCHEMA
    }


_CLASSES = _build()

Hello: Any = _CLASSES["Hello"]
Header: Any = _CLASSES["Header"]
ClusterConfig: Any = _CLASSES["ClusterConfig"]
Index: Any = _CLASSES["Index"]
IndexUpdate: Any = _CLASSES["IndexUpdate"]
FileInfo: Any = _CLASSES["FileInfo"]
Request: Any = _CLASSES["Request"]
Response: Any = _CLASSES["Response"]
DownloadProgress: Any = _CLASSES["DownloadProgress"]
Ping: Any = _CLASSES["Ping"]
Close: Any = _CLASSES["Close"]
