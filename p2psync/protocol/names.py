"""Validation of folder-relative names as they cross any boundary (wire, disk, CLI)."""

from __future__ import annotations

import unicodedata

from ..errors import UnsafePathError

MAX_NAME_BYTES = 4096


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe folder-relative name, else raise UnsafePathError.

    Safe: non-empty, NFC, ``/``-separated, not absolute, no ``.``/``..``/empty segment,
    no NUL or backslash, no control characters, at most MAX_NAME_BYTES of UTF-8.
    """
    if not isinstance(name, str) or not name:
        raise UnsafePathError("empty name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafePathError(f"name longer than {MAX_NAME_BYTES} bytes")
    if "\x00" in name:
        raise UnsafePathError(f"name {name!r} contains NUL")
    if "\\" in name:
        raise UnsafePathError(f"name {name!r} contains a backslash")
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise UnsafePathError(f"name {name!r} contains control or surrogate characters")
    if name.startswith("/"):
        raise UnsafePathError(f"name {name!r} is absolute")
    if len(name) >= 2 and name[1] == ":":
        raise UnsafePathError(f"name {name!r} looks like a drive path")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePathError(f"name {name!r} has an empty, '.' or '..' segment")
    if unicodedata.normalize("NFC", name) != name:
        raise UnsafePathError(f"name {name!r} is not in Unicode NFC")
    return name


def is_valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except UnsafePathError:
        return False
    return True
