"""Names p2psync keeps for itself inside a shared folder; never scanned or synced as user data.

Shared by the scanner (skip them), the puller (temp files, marker) and the request
handler (refuse them). Like Syncthing's ``.stignore``, ``.p2pignore`` is read by the
scanner but never synced: each device keeps its own ignore patterns.

Every check compares names case-folded and Unicode-normalised (``fold``), on every
platform: a case-insensitive filesystem (macOS, Windows, ``FakeFS(case_insensitive=True)``)
stores a peer's ``.P2PIGNORE`` as our ``.p2pignore``, and a peer may be on any OS. A user
file that folds to one of these names is not synced either. Only ``is_own_temp_base``
(what the stale-temp cleaner may delete) matches the exact spelling the puller writes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MARKER = ".p2psync"  # folder marker at the root (directory or file)
VERSIONS_DIR = ".p2pversions"  # versioner's archive at the root
IGNORE_FILE = ".p2pignore"  # ignore patterns at the root
TEMP_PREFIX = ".p2psync."  # puller temp files, in any directory: .p2psync.<base>.tmp
TEMP_SUFFIX = ".tmp"

_ROOT_ONLY = frozenset({MARKER, VERSIONS_DIR, IGNORE_FILE})
# Every reserved name starts with ".p2p", and no character other than ".", "2", "p" and
# "P" folds to one of those (checked over all of Unicode): a name without this is not ours.
_MAYBE_OURS = re.compile(r"\.[pP]2[pP]")
# Above this many UTF-8 bytes a temp name hashes the base name (as Syncthing does), so
# prefix + base + suffix stays below common 255-byte name limits.
_MAX_PLAIN_TEMP_BASE = 145


def fold(name: str) -> str:
    """``name`` as a case-insensitive filesystem may compare it: NFC, then upper-cased
    and case-folded (so Windows' upper-case table and Unicode case folding both map to
    one spelling: ``ı`` and ``ſ`` fold like ``i`` and ``s``)."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFC", name).upper().casefold()


def is_temp_base(base: str) -> bool:
    """True if a base name (no '/') is, in any case, a puller temp file name."""
    if not base.startswith(".") or _MAYBE_OURS.match(base) is None:  # cheap reject
        return False
    folded = fold(base)
    return folded.startswith(TEMP_PREFIX) and folded.endswith(TEMP_SUFFIX)


def is_own_temp_base(base: str) -> bool:
    """True if a base name is spelt exactly as the puller writes its temp files: the only
    ones the stale-temp cleaner deletes (a user's ``.P2PSYNC.x.TMP`` is never synced, and
    never deleted either)."""
    return base.startswith(TEMP_PREFIX) and base.endswith(TEMP_SUFFIX)


def is_internal_entry(parent: str, base: str) -> bool:
    """``is_internal`` for the entry ``base`` of directory ``parent`` (``""`` = root)."""
    if _MAYBE_OURS.match(base) is None:  # cheap reject: the common case while scanning
        return False
    folded = fold(base)
    if parent == "" and folded in _ROOT_ONLY:
        return True
    return folded.startswith(TEMP_PREFIX) and folded.endswith(TEMP_SUFFIX)


def is_internal(name: str) -> bool:
    """True if folder-relative ``name`` is, or lies under, one of p2psync's own names
    (compared case-folded, see ``fold``)."""
    if name[:1] != "." and "/." not in name:  # cheap reject: no segment starts with "."
        return False
    if _MAYBE_OURS.search(name) is None:
        return False
    top, _, rest = name.partition("/")
    folded_top = fold(top)
    if folded_top in (MARKER, VERSIONS_DIR) or (not rest and folded_top == IGNORE_FILE):
        return True
    return is_temp_base(name.rpartition("/")[2])


def temp_name(name: str) -> str:
    """The puller's temp file for ``name``: same directory, ``.p2psync.<base>.tmp``."""
    parent, sep, base = name.rpartition("/")
    if len(base.encode("utf-8")) > _MAX_PLAIN_TEMP_BASE:
        base = hashlib.sha256(base.encode("utf-8")).hexdigest()
    return f"{parent}{sep}{TEMP_PREFIX}{base}{TEMP_SUFFIX}"
