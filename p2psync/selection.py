"""Selective sync, the rule: which names of a folder this device keeps (pure, no I/O).

A folder's *selection* is a tuple of folder-relative directory paths (NFC, ``/``
separated, no leading or trailing slash). The empty selection keeps everything. A name
is *selected* when the selection is empty, or the name equals or lies under a selected
path, or it is a directory that holds one (an ancestor of a selected path: it must exist
to hold it). Everything else is *left out*: never pulled here, and this device's entries
for it are announced invalid (never deleted) so peers keep their copies.

``normalize`` is the one place a selection is validated (config, API, CLI).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from .errors import ConfigError, UnsafePathError
from .fs.internal import is_internal
from .protocol.names import validate_name

Selection = tuple[str, ...]


def normalize(paths: Iterable[str]) -> Selection:
    """Validated, NFC, deduplicated, sorted paths with none under another (``docs`` and
    ``docs/a`` keep ``docs``). Raises ConfigError naming the bad path."""
    cleaned: set[str] = set()
    for raw in paths:
        path = unicodedata.normalize("NFC", str(raw)).strip("/")
        if not path:
            raise ConfigError(f"selection: {raw!r} is not a folder-relative directory path")
        try:
            validate_name(path)
        except UnsafePathError as exc:
            raise ConfigError(f"selection: {raw!r}: {exc}") from exc
        if is_internal(path):
            raise ConfigError(f"selection: {raw!r} is one of p2psync's own names")
        cleaned.add(path)
    kept: list[str] = []
    for path in sorted(cleaned, key=lambda p: (p.count("/"), p)):
        if not any(_at_or_below(path, k) for k in kept):
            kept.append(path)
    return tuple(sorted(kept))


def _at_or_below(name: str, path: str) -> bool:
    return name == path or name.startswith(path + "/")


def is_selected(name: str, selection: Selection) -> bool:
    """Whether ``name`` is kept on this device under ``selection`` (see the module)."""
    if not selection:
        return True
    for path in selection:
        if _at_or_below(name, path) or path.startswith(name + "/"):
            return True
    return False


def added(old: Selection, new: Selection) -> Selection:
    """Paths of ``new`` that bring in names ``old`` left out (empty if none). Going back to
    everything (an empty ``new``) from a non-empty ``old`` is ``("",)``: the whole folder."""
    if not old:
        return ()
    if not new:
        return ("",)
    return tuple(p for p in new if not any(_at_or_below(p, o) for o in old))


def narrowed(old: Selection, new: Selection) -> bool:
    """Whether ``new`` leaves out some name ``old`` kept (local copies may go)."""
    if not new:
        return False
    if not old:
        return True
    return any(not any(_at_or_below(o, n) for n in new) for o in old)


def renamed(selection: Selection, old: str, new: str) -> Selection:
    """``selection`` with the selected path ``old`` (or paths under it) moved to ``new``."""
    moved = []
    for path in selection:
        if _at_or_below(path, old):
            path = new + path[len(old) :]
        moved.append(path)
    return normalize(moved) if moved else ()


def follow_renames(
    selection: Selection, gone: dict[str, bytes | None], new: dict[str, bytes | None]
) -> Selection:
    """``selection`` after one scan's changes: a selected directory in ``gone`` (names
    deleted, each with a key: None for a directory) whose entries all appear under
    exactly one new directory of ``new`` with the same relative names and keys was
    renamed there, and the selection follows it."""
    result = selection
    for path in selection:
        if path not in gone or gone[path] is not None:
            continue
        before = _below(gone, path)
        targets = [
            d
            for d, key in new.items()
            if key is None and d != path and _below(new, d) == before and not is_at(d, path)
        ]
        if len(targets) == 1:
            result = renamed(result, path, targets[0])
    return result


def is_at(name: str, path: str) -> bool:
    """Whether ``name`` is ``path`` or lies under it."""
    return _at_or_below(name, path)


def _below(names: dict[str, bytes | None], path: str) -> dict[str, bytes | None]:
    prefix = path + "/"
    return {n[len(prefix) :]: k for n, k in names.items() if n.startswith(prefix)}
