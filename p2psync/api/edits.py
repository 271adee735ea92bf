"""Config edits shared by the daemon's API and the offline CLI: pure ``Config -> Config``.

Each function validates its input and raises a ``P2PSyncError`` naming what is wrong, so
the same request is refused the same way whether the daemon is running or not. No I/O:
callers create directories, save the config and tidy the pending store. Device IDs come
in as ``DeviceID`` values: the CLI, the API and the web pages parse the user's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from ..config import (
    Config,
    DeviceConfig,
    FolderConfig,
    argument_errors,
    parse_device_address,
    validate_folder_id,
)
from ..endpoints import DYNAMIC_ADDRESS
from ..errors import NotFoundError, UsageError
from ..folder_paths import folder_path_problem, normalized_path
from ..identity import DeviceID
from ..pending import PendingFolder
from ..selection import normalize as normalize_selection
from ..values import FOLDER_TYPES, FolderKind


def _known_device(cfg: Config, did: DeviceID) -> DeviceID:
    if cfg.device(did) is None:
        raise NotFoundError(f"device {did} is not configured; run `p2psync peer add {did}` first")
    return did


def folder_config(cfg: Config, folder_id: str) -> FolderConfig:
    """``folder_id``'s config; NotFoundError if there is no such folder."""
    return _folder(cfg, folder_id)


def _folder(cfg: Config, folder_id: str) -> FolderConfig:
    f = cfg.folder(folder_id)
    if f is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    return f


def add_device(
    cfg: Config,
    own: DeviceID,
    did: DeviceID,
    *,
    name: str = "",
    addresses: Sequence[str] = (),
    introducer: bool = False,
) -> tuple[Config, bool]:
    """Trust ``did`` (add or update it); returns (config, whether it already existed)."""
    if did == own:
        raise UsageError("that is this device's own ID")
    with argument_errors():
        parsed = tuple(parse_device_address(a, f"addresses[{i}]") for i, a in enumerate(addresses))
    existing = cfg.device(did)
    new = DeviceConfig(
        id=did,
        name=name or (existing.name if existing else ""),
        addresses=parsed or (existing.addresses if existing else (DYNAMIC_ADDRESS,)),
        introducer=introducer,
        paused=existing.paused if existing else False,
        max_send_kbps=existing.max_send_kbps if existing else 0,
        max_recv_kbps=existing.max_recv_kbps if existing else 0,
    )
    return cfg.with_device(new), existing is not None


def remove_device(cfg: Config, did: DeviceID) -> Config:
    if cfg.device(did) is None:
        raise NotFoundError(f"device {did} is not configured")
    return cfg.without_device(did)


def set_device_paused(cfg: Config, did: DeviceID, paused: bool) -> Config:
    dc = cfg.device(_known_device(cfg, did))
    assert dc is not None
    return cfg.with_device(replace(dc, paused=paused))


def folder_id_from(path: Path) -> str:
    """A folder ID derived from a directory name (``My Docs`` → ``My-Docs``)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", path.name).strip("-._") or "folder"
    return base[:64]


def add_folder(
    cfg: Config,
    path: Path,
    *,
    folder_id: str | None = None,
    label: str = "",
    folder_type: str = FolderKind.SEND_RECEIVE,
    share: Iterable[DeviceID] = (),
    home: Path | None = None,
) -> FolderConfig:
    """The new folder for absolute ``path`` (not yet in ``cfg``: add with ``cfg.with_folder``)."""
    if not path.is_absolute():
        raise UsageError(f"folder path {str(path)!r} must be absolute")
    with argument_errors():
        folder_id = validate_folder_id(folder_id or folder_id_from(path), "--id")
    kind = _folder_kind(folder_type)
    _check_path(cfg, path, home)
    if cfg.folder(folder_id) is not None:
        raise UsageError(f"folder {folder_id!r} already exists")
    devices = tuple(dict.fromkeys(_known_device(cfg, d) for d in share))
    return FolderConfig(
        id=folder_id, path=str(path), label=label or path.name, type=kind, devices=devices
    )


def share_folder(cfg: Config, folder_id: str, did: DeviceID) -> tuple[Config, bool]:
    """Share ``folder_id`` with ``did``; returns (config, whether it was already shared)."""
    f = _folder(cfg, folder_id)
    _known_device(cfg, did)
    if did in f.devices:
        return cfg, True
    return cfg.with_folder(replace(f, devices=f.devices + (did,))), False


def remove_folder(cfg: Config, folder_id: str) -> Config:
    _folder(cfg, folder_id)
    return cfg.without_folder(folder_id)


def set_folder_paused(cfg: Config, folder_id: str, paused: bool) -> Config:
    return cfg.with_folder(replace(_folder(cfg, folder_id), paused=paused))


def accept_folder(
    cfg: Config,
    offers: Sequence[PendingFolder],
    folder_id: str,
    path: Path,
    home: Path | None = None,
    folder_type: str = FolderKind.SEND_RECEIVE,
) -> FolderConfig:
    """The folder accepted from pending ``offers``, shared back with the trusted offerers.

    An offer of a folder ID that exists here (both devices have a ``default`` folder) is
    accepted into the existing folder, as Syncthing does: it is shared with the offerers
    and the two merge. Asking for another path for it is refused with the way out.
    """
    with argument_errors():
        validate_folder_id(folder_id)
    kind = _folder_kind(folder_type)
    mine = [e for e in offers if e.folder_id == folder_id]
    if not mine:
        raise NotFoundError(f"no pending folder {folder_id!r} (see `p2psync folder pending`)")
    offerers = (DeviceID.parse(e.device_id) for e in mine)  # the pending store's text
    devices = tuple(dict.fromkeys(did for did in offerers if cfg.device(did)))
    existing = cfg.folder(folder_id)
    if existing is not None:
        if path not in (
            existing.resolved_path.absolute(),
            default_accept_path(cfg, folder_id, home),
        ):
            raise UsageError(
                f"folder {folder_id!r} already exists here, at {existing.path}; accept the "
                f"offer into it with `p2psync folder accept {folder_id}` (without a path)"
            )
        return replace(existing, devices=tuple(dict.fromkeys(existing.devices + devices)))
    if not path.is_absolute():
        raise UsageError(f"folder path {str(path)!r} must be absolute")
    _check_path(cfg, path, home)
    for f in cfg.folders:
        if f.resolved_path.absolute() == path:
            raise UsageError(f"{path} is already shared as folder {f.id!r}")
    return FolderConfig(
        id=folder_id,
        path=str(path),
        label=mine[0].label or folder_id,
        type=kind,
        devices=devices,
    )


def _check_path(cfg: Config, path: Path, home: Path | None) -> None:
    problem = folder_path_problem(cfg, path, home)
    if problem is not None:
        raise UsageError(f"{problem}; choose another path")


def default_accept_path(cfg: Config, folder_id: str, home: Path | None = None) -> Path:
    """Where an accepted folder goes when no path is given: ``~/<id>``, as Syncthing puts
    new folders in the home directory — a sibling of the default ``~/Sync``, never inside
    another folder. If that path would nest with a folder (or is one), ``~/<id>-2``, …"""
    base = normalized_path(Path("~") / folder_id)
    for n in range(1, 100):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if folder_path_problem(cfg, candidate, home) is None:
            return candidate
    raise UsageError(f"no free default path for folder {folder_id!r} next to {base}; give a PATH")


def _folder_kind(folder_type: str) -> FolderKind:
    kind = FolderKind.named(folder_type)
    if kind is None:
        raise UsageError(
            f"folder type must be one of {', '.join(FOLDER_TYPES)}, not {folder_type!r}"
        )
    return kind


# ---- selective sync (selection.py) ------------------------------------------------------


def set_selection(cfg: Config, folder_id: str, paths: Iterable[str]) -> Config:
    """The folder keeps exactly ``paths`` (empty: the whole folder)."""
    with argument_errors():
        selected = normalize_selection(paths)
    return cfg.with_folder(replace(_folder(cfg, folder_id), selected=selected))


def select_paths(cfg: Config, folder_id: str, paths: Sequence[str]) -> Config:
    """Add ``paths`` to what the folder keeps. From the whole folder, the folder then
    keeps only ``paths``."""
    if not paths:
        raise UsageError("name at least one folder-relative directory to select")
    return set_selection(cfg, folder_id, (*_folder(cfg, folder_id).selected, *paths))


def unselect_paths(cfg: Config, folder_id: str, paths: Sequence[str]) -> Config:
    """Stop keeping ``paths`` (and the selected paths below them). Each must be selected
    or hold selected paths; the last selected path cannot go (an empty selection is the
    whole folder)."""
    current = _folder(cfg, folder_id).selected
    with argument_errors():
        gone = normalize_selection(paths)
    if not current:
        raise UsageError(
            f"folder {folder_id!r} keeps everything; choose what to keep with "
            f"`p2psync folder select {folder_id} PATH...`"
        )
    left = list(current)
    for path in gone:
        below = [p for p in left if p == path or p.startswith(path + "/")]
        if not below:
            raise UsageError(
                f"{path!r} is not selected in {folder_id!r} (selected: {', '.join(current)})"
            )
        left = [p for p in left if p not in below]
    if not left:
        raise UsageError(
            "cannot leave out every selected path (an empty selection keeps the whole "
            "folder); select another path first, or keep everything with --all"
        )
    return set_selection(cfg, folder_id, left)
