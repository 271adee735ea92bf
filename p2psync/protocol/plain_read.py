"""Primitive readers of plain msgpack values: each returns the value, or raises
``Invalid`` naming the path of what is wrong (``wire_schema.py`` and
``wire_fileinfo.py`` build messages from them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from . import limits as L
from .validate import Invalid

E = TypeVar("E", bound=int)


def read_int(v: Any, path: str, lo: int, hi: int) -> int:
    if type(v) is not int:  # bool is an int subclass, and floats are not integers
        raise Invalid(path, f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise Invalid(path, f"{v} out of range {lo}..{hi}")
    return v


def read_uint64(v: Any, path: str) -> int:
    return read_int(v, path, 0, L.UINT64_MAX)


def read_seq(v: Any, path: str) -> int:
    return read_int(v, path, 0, L.INT64_MAX)


def read_bool(v: Any, path: str) -> bool:
    if type(v) is not bool:
        raise Invalid(path, f"expected a boolean, got {type(v).__name__}")
    return v


def read_str(v: Any, path: str, max_bytes: int, *, nonempty: bool = False) -> str:
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


def read_ident(v: Any, path: str, max_bytes: int) -> str:
    """A non-empty identifier without control characters (folder IDs)."""
    s = read_str(v, path, max_bytes, nonempty=True)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        raise Invalid(path, f"{s!r} contains control characters")
    return s


def read_bytes(v: Any, path: str, max_len: int, exact: int | None = None) -> bytes:
    if type(v) is not bytes:
        raise Invalid(path, f"expected bytes, got {type(v).__name__}")
    if exact is not None and len(v) != exact:
        raise Invalid(path, f"expected {exact} bytes, got {len(v)}")
    if len(v) > max_len:
        raise Invalid(path, f"{len(v)} bytes, longer than {max_len}")
    return v


def read_enum(v: Any, path: str, cls: type[E]) -> E:
    if type(v) is not int:
        raise Invalid(path, f"expected an integer, got {type(v).__name__}")
    try:
        return cls(v)
    except ValueError:
        raise Invalid(path, f"{v} is not a {cls.__name__}") from None


def read_array(v: Any, path: str, max_len: int) -> tuple[Any, ...] | list[Any]:
    if type(v) is not tuple and type(v) is not list:
        raise Invalid(path, f"expected an array, got {type(v).__name__}")
    if len(v) > max_len:
        raise Invalid(path, f"{len(v)} entries, more than {max_len}")
    return v


def read_struct(v: Any, path: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if type(v) is not dict:
        raise Invalid(path, f"expected a map, got {type(v).__name__}")
    if len(v) > L.MAX_STRUCT_KEYS:
        raise Invalid(path, f"{len(v)} keys, more than {L.MAX_STRUCT_KEYS}")
    for k in keys:
        if k not in v:
            raise Invalid(f"{path}.{k}" if path else k, "missing")
    return v
