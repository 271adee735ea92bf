"""FileInfo <-> plain msgpack values, checked on the way in: the part of every index
message that holds nearly all of its bytes, with a fast path for entries that pass every
check (see ``wire_schema.py`` for the form of structs)."""

from __future__ import annotations

from typing import Any

from . import limits as L
from .fileinfo import HASH_SIZE, BlockInfo, FileInfo, FileType
from .plain_read import (
    read_array,
    read_bool,
    read_bytes,
    read_enum,
    read_int,
    read_seq,
    read_str,
    read_struct,
    read_uint64,
)
from .validate import Invalid, check_file_info
from .vector import Counter, Vector


def vector_to_plain(vec: Vector) -> list[list[int]]:
    return [[c.id, c.value] for c in vec]


def vector_from_plain(v: Any, path: str) -> Vector:
    """Counters sorted by id, ids unique, values non-zero: the canonical form."""
    items = read_array(v, path, L.MAX_COUNTERS)
    out: list[Counter] = []
    prev = -1
    for i, pair in enumerate(items):
        p = f"{path}[{i}]"
        pair = read_array(pair, p, 2)
        if len(pair) != 2:
            raise Invalid(p, "a counter is [id, value]")
        cid = read_uint64(pair[0], f"{p}.id")
        value = read_uint64(pair[1], f"{p}.value")
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
    """Only FileInfo's fields: a LocalFileInfo's bookkeeping is never sent."""
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
    items = read_array(v, path, L.MAX_BLOCKS_PER_FILE)
    out = []
    for i, b in enumerate(items):
        if (type(b) is not tuple and type(b) is not list) or len(b) != 3:
            raise Invalid(f"{path}[{i}]", "a block is [offset, size, hash]")
        offset, size, h = b
        # Inline the common case: this loop runs for every block of every file.
        if type(offset) is not int or not 0 <= offset <= L.INT64_MAX:
            read_seq(offset, f"{path}[{i}].offset")
        if type(size) is not int or not 0 <= size <= L.INT32_MAX:
            read_int(size, f"{path}[{i}].size", 0, L.INT32_MAX)
        if type(h) is not bytes or len(h) != HASH_SIZE:
            read_bytes(h, f"{path}[{i}].hash", HASH_SIZE, exact=HASH_SIZE)
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
    "symlink_target",
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
    )  # fmt: skip
    for set_slot, value in zip(_FILE_SLOTS, values, strict=True):
        set_slot(fi, value)
    return fi


def _file_info_checked(v: Any, path: str) -> FileInfo:
    d = read_struct(v, path, _FILE_KEYS)
    fi = FileInfo(
        name=read_str(d["name"], f"{path}.name", L.MAX_NAME_BYTES),
        type=read_enum(d["type"], f"{path}.type", FileType),
        size=read_seq(d["size"], f"{path}.size"),
        permissions=read_int(d["permissions"], f"{path}.permissions", 0, L.UINT32_MAX),
        modified_ns=read_int(d["modified_ns"], f"{path}.modified_ns", L.INT64_MIN, L.INT64_MAX),
        modified_by=read_uint64(d["modified_by"], f"{path}.modified_by"),
        deleted=read_bool(d["deleted"], f"{path}.deleted"),
        invalid=read_bool(d["invalid"], f"{path}.invalid"),
        no_permissions=read_bool(d["no_permissions"], f"{path}.no_permissions"),
        version=vector_from_plain(d["version"], f"{path}.version"),
        sequence=read_seq(d["sequence"], f"{path}.sequence"),
        block_size=read_int(d["block_size"], f"{path}.block_size", 0, L.INT32_MAX),
        blocks=_blocks_from_plain(d["blocks"], f"{path}.blocks"),
        symlink_target=read_str(
            d["symlink_target"], f"{path}.symlink_target", L.MAX_SYMLINK_TARGET_BYTES
        ),
    )
    if "\x00" in fi.symlink_target:
        raise Invalid(f"{path}.symlink_target", "contains NUL")
    check_file_info(fi, path)
    return fi


def files_from_plain(v: Any, path: str) -> tuple[FileInfo, ...]:
    items = read_array(v, path, L.MAX_FILES_PER_INDEX)
    return tuple(file_info_from_plain(f, f"{path}[{i}]") for i, f in enumerate(items))
