"""Where a folder may live: folders must not nest, and none may contain the node's home
(checked on every add and at start; pure path arithmetic, no filesystem access)."""

from __future__ import annotations

import os
from pathlib import Path

from .config import Config


def normalized_path(path: str | Path) -> Path:
    """``path`` with ``~`` expanded, made absolute and ``..`` folded (no filesystem access)."""
    return Path(os.path.normpath(Path(path).expanduser().absolute()))


def folder_path_problem(
    cfg: Config, path: str | Path, home: Path | None = None, *, folder_id: str | None = None
) -> str | None:
    """Why a folder (``folder_id``, or a new one) cannot live at ``path``, or None.

    Folders must not nest: a folder inside another would be scanned and shared by both,
    its marker and versions included. A folder must not contain the node's home either
    (its keys and index would be shared)."""
    new = normalized_path(path)
    if home is not None and normalized_path(home).is_relative_to(new):
        return f"{new} contains this node's home {normalized_path(home)} (keys and index)"
    for f in cfg.folders:
        if f.id == folder_id:
            continue
        other = normalized_path(f.path)
        if other == new:
            return f"{new} is already shared as folder {f.id!r}"
        if new.is_relative_to(other):
            return f"{new} is inside folder {f.id!r} ({other}); folders must not nest"
        if other.is_relative_to(new):
            return f"{new} contains folder {f.id!r} ({other}); folders must not nest"
    return None


def blocked_folders(cfg: Config, home: Path | None) -> dict[str, str]:
    """Folders of ``cfg`` that must not run, with the reason: those containing another
    folder (or the home), and both of two folders with the same path. A folder inside
    another runs: only the outer one would scan and share what is not its own."""
    blocked: dict[str, str] = {}
    fix = "; move or remove one of them (`p2psync folder remove ID`)"
    for f in cfg.folders:
        mine = normalized_path(f.path)
        if home is not None and normalized_path(home).is_relative_to(mine):
            blocked[f.id] = (
                f"folder path {mine} contains this node's home {normalized_path(home)}; "
                "move the folder or the home"
            )
            continue
        for other in cfg.folders:
            theirs = normalized_path(other.path)
            if other.id != f.id and theirs.is_relative_to(mine):
                how = "has the same path as" if theirs == mine else "contains"
                blocked[f.id] = f"folder path {mine} {how} folder {other.id!r} ({theirs}){fix}"
                break
    return blocked
