"""Every setting by its key, for the CLI and the API: read, set, add to or remove from a
list. Pure ``Config -> Config``.

A change is made on the config's TOML form and the result goes through
``config.parse_config`` — the same validation as loading ``config.toml`` — so a value
the file would refuse is refused here with the same message, whether the daemon runs
or not. Keys are dotted paths inside one scope: the node (``max_send_kbps``,
``discovery.global_servers``), a folder (``versioning.type``, ``rescan_interval_s``,
``devices``) or a device (``addresses``, ``max_recv_kbps``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config, config_to_dict, parse_config
from .errors import ConfigError, NotFoundError, UsageError
from .identity import DeviceID
from .values import DYNAMIC

SCOPES = ("node", "folder", "device")
# Keys no settings call changes: identities, and the tables that have their own commands.
FIXED = {"node": {"devices", "folders"}, "folder": {"id", "path"}, "device": {"id"}}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class Scope:
    kind: str = "node"  # node, folder, device
    id: str = ""  # the folder or device ID

    def describe(self) -> str:
        return "this device" if self.kind == "node" else f"{self.kind} {self.id!r}"


def settings_of(cfg: Config, scope: Scope) -> dict[str, Any]:
    """The scope's settings as in config.toml (the node's without devices and folders)."""
    data = config_to_dict(cfg)
    _, table = _locate(data, cfg, scope)
    if scope.kind == "node":
        return {k: v for k, v in table.items() if k not in FIXED["node"]}
    return table


def get_setting(cfg: Config, scope: Scope, key: str) -> Any:
    table = settings_of(cfg, scope)
    *parents, leaf = _parts(key)
    for part in parents:
        nxt = table.get(part)
        if not isinstance(nxt, dict):
            raise UsageError(f"{key!r}: unknown setting of {scope.describe()}")
        table = nxt
    if leaf not in table:
        raise UsageError(f"{key!r}: unknown setting of {scope.describe()}")
    return table[leaf]


def change_settings(
    cfg: Config,
    scope: Scope,
    *,
    set_values: Mapping[str, Any] | None = None,
    add: Mapping[str, Sequence[Any]] | None = None,
    remove: Mapping[str, Sequence[Any]] | None = None,
) -> Config:
    """``cfg`` with the settings of ``scope`` changed; validated as config.toml is."""
    data = config_to_dict(cfg)
    where, table = _locate(data, cfg, scope)
    for key, value in (set_values or {}).items():
        parent, leaf = _parent(table, key, scope)
        parent[leaf] = _normalised(cfg, scope, key, value, known=True)
    for key, values in (add or {}).items():
        items = _list_at(table, key, scope)
        for value in _normalised(cfg, scope, key, list(values), known=True):
            if value not in items:
                items.append(value)
    for key, values in (remove or {}).items():
        items = _list_at(table, key, scope)
        for value in _normalised(cfg, scope, key, list(values), known=False):
            if value not in items:
                raise NotFoundError(f"{value!r} is not in {key} of {scope.describe()}")
            items.remove(value)
        if scope.kind == "device" and key == "addresses" and not items:
            items.append(DYNAMIC)  # a device needs some way to be found
    try:
        return parse_config(data)
    except ConfigError as exc:
        text = re.sub(rf"^{re.escape(where)}\.?", "", str(exc)) if where else str(exc)
        prefix = "" if scope.kind == "node" else f"{scope.describe()}: "
        raise ConfigError(f"{prefix}{text}") from None


def coerce(current: Any, key: str, raw: Sequence[str]) -> Any:
    """Command-line text for a setting whose current value is ``current``: the same
    type (a list takes every word; a boolean true/false, yes/no, on/off, 1/0)."""
    if isinstance(current, list):
        return list(raw)
    if isinstance(current, dict):
        raise UsageError(f"{key!r} is a table; set its keys, e.g. {key}.type")
    if len(raw) != 1:
        raise UsageError(f"{key!r} takes one value, got {len(raw)}")
    text = raw[0]
    if isinstance(current, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UsageError(f"{key!r} must be true or false, not {text!r}")
    for kind, name in ((int, "an integer"), (float, "a number")):
        if isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                raise UsageError(f"{key!r} must be {name}, not {text!r}") from None
    return text


# ---- helpers ------------------------------------------------------------------------------


def _parts(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise UsageError(f"{key!r} is not a setting key (like versioning.type)")
    return parts


def _locate(data: dict[str, Any], cfg: Config, scope: Scope) -> tuple[str, dict[str, Any]]:
    """(the TOML path of the scope's table, the table) inside ``data``."""
    if scope.kind == "node":
        return "", data
    if scope.kind == "folder":
        for i, f in enumerate(cfg.folders):
            if f.id == scope.id:
                return f"folders[{i}]", data["folders"][i]
        raise NotFoundError(f"folder {scope.id!r} does not exist")
    if scope.kind == "device":
        did = DeviceID.parse(scope.id)
        for i, d in enumerate(cfg.devices):
            if d.id == did:
                return f"devices[{i}]", data["devices"][i]
        raise NotFoundError(f"device {did} is not configured")
    raise UsageError(f"scope must be one of {', '.join(SCOPES)}, not {scope.kind!r}")


def _parent(table: dict[str, Any], key: str, scope: Scope) -> tuple[dict[str, Any], str]:
    *parents, leaf = _parts(key)
    if (parents[0] if parents else leaf) in FIXED[scope.kind]:
        raise UsageError(f"{key!r} of {scope.describe()} cannot be changed here")
    for part in parents:
        nxt = table.get(part)
        if not isinstance(nxt, dict):
            raise UsageError(f"{key!r}: unknown setting of {scope.describe()}")
        table = nxt
    if leaf not in table:  # config_to_dict writes every setting: this one does not exist
        raise UsageError(f"{key!r}: unknown setting of {scope.describe()}")
    return table, leaf


def _list_at(table: dict[str, Any], key: str, scope: Scope) -> list[Any]:
    parent, leaf = _parent(table, key, scope)
    items = parent[leaf]
    if not isinstance(items, list):
        raise UsageError(f"{key!r} is not a list; set it instead")
    return items


def _normalised(cfg: Config, scope: Scope, key: str, value: Any, *, known: bool) -> Any:
    """Device IDs in a folder's ``devices`` parsed once and written in their canonical
    form (so removing one typed another way works); with ``known``, each must be a
    configured device. Anything else is left for ``parse_config`` to judge."""
    if not (scope.kind == "folder" and key == "devices" and isinstance(value, list)):
        return value
    parsed = [DeviceID.parse(v) if isinstance(v, str) else v for v in value]
    for did in parsed:
        if known and isinstance(did, DeviceID) and cfg.device(did) is None:
            raise NotFoundError(
                f"device {did} is not configured; run `p2psync peer add {did}` first"
            )
    return [str(v) if isinstance(v, DeviceID) else v for v in parsed]
