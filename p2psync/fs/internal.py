"""Names p2psync keeps for itself inside a shared folder; never scanned or synced as user data.

Shared by the scanner (skip them), the puller (temp files, marker) and the request
handler (refuse them). Like Syncthing's ``.stignore``, ``.p2pignore`` is read by the
scanner but never synced: each device keeps its own ignore patterns.
"""

from __future__ import annotations

import hashlib

MARKER = ".p2psync"  # folder marker at the root (directory or file)
VERSIONS_DIR = ".p2pversions"  # versioner's archive at the root
IGNORE_FILE = ".p2pignore"  # ignore patterns at the root
TEMP_PREFIX = ".p2psync."  # puller temp files, in any directory: .p2psync.<base>.tmp
TEMP_SUFFIX = ".tmp"

_ROOT_ONLY = frozenset({MARKER, VERSIONS_DIR, IGNORE_FILE})
# Above this many UTF-8 bytes a temp name hashes the base name (as Syncthing does), so
# prefix + base + suffix stays below common 255-byte name limits.
_MAX_PLAIN_TEMP_BASE = 145


def is_temp_base(base: str) -> bool:
    """True if a base name (no '/') is a puller temp file name."""
    return base.startswith(TEMP_PREFIX) and base.endswith(TEMP_SUFFIX)


def is_internal_entry(parent: str, base: str) -> bool:
    """``is_internal`` for the entry ``base`` of directory ``parent`` (``""`` = root)."""
    if not base.startswith(".p2p"):  # cheap reject: the common case while scanning
        return False
    return (parent == "" and base in _ROOT_ONLY) or is_temp_base(base)


def is_internal(name: str) -> bool:
    """True if folder-relative ``name`` is, or lies under, one of p2psync's own names."""
    base = name.rpartition("/")[2]
    top = name.split("/", 1)[0]
    return top in (MARKER, VERSIONS_DIR) or name == IGNORE_FILE or is_temp_base(base)


def temp_name(name: str) -> str:
    """The puller's temp file for ``name``: same directory, ``.p2psync.<base>.tmp``."""
    parent, sep, base = name.rpartition("/")
    if len(base.encode("utf-8")) > _MAX_PLAIN_TEMP_BASE:
        base = hashlib.sha256(base.encode("utf-8")).hexdigest()
    return f"{parent}{sep}{TEMP_PREFIX}{base}{TEMP_SUFFIX}"
