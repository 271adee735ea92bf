"""Validation of folder-relative names as they cross any boundary (wire, disk, CLI)."""

from __future__ import annotations

import re
import unicodedata

from ..errors import UnsafePathError

MAX_NAME_BYTES = 4096
_UNSAFE_CHARS = re.compile("[\x00-\x1f\\\\\ud800-\udfff]")  # controls, backslash, surrogates
_BAD_SEGMENT = re.compile(r"(?:^|/)\.{0,2}(?:/|$)")  # "", "." or ".." between slashes


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe folder-relative name, else raise UnsafePathError.

    Safe: non-empty, NFC, ``/``-separated, not absolute, no ``.``/``..``/empty segment,
    no NUL or backslash, no control characters, at most MAX_NAME_BYTES of UTF-8.
    (Called for every name a scan walks: the checks run in C where they can.)
    """
    if not isinstance(name, str) or not name:
        raise UnsafePathError("empty name")
    longest = len(name) * 4  # UTF-8 bytes at most
    if longest > MAX_NAME_BYTES and len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafePathError(f"name longer than {MAX_NAME_BYTES} bytes")
    if _UNSAFE_CHARS.search(name) is not None:
        if "\x00" in name:
            raise UnsafePathError(f"name {name!r} contains NUL")
        if "\\" in name:
            raise UnsafePathError(f"name {name!r} contains a backslash")
        raise UnsafePathError(f"name {name!r} contains control or surrogate characters")
    if name.startswith("/"):
        raise UnsafePathError(f"name {name!r} is absolute")
    if len(name) >= 2 and name[1] == ":":
        raise UnsafePathError(f"name {name!r} looks like a drive path")
    if _BAD_SEGMENT.search(name) is not None:
        raise UnsafePathError(f"name {name!r} has an empty, '.' or '..' segment")
    if not name.isascii() and not unicodedata.is_normalized("NFC", name):
        raise UnsafePathError(f"name {name!r} is not in Unicode NFC")
    return name


def is_valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except UnsafePathError:
        return False
    return True
