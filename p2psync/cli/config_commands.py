"""`p2psync config ...`: read and change any setting without editing config.toml.

With a running daemon every change goes through its API (applied at once, or named as
needing a restart); without one, the config file is edited with the same validation
(``p2psync.settings``), so a value is refused the same way either way.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..settings import Scope, change_settings, coerce, get_setting, settings_of
from ..textsafe import safe
from .support import Context, device_by_id_or_name, emit, json_option, url_segment


@click.group("config")
def config_group() -> None:
    """Read and change settings (the node's, a folder's with --folder, a device's with
    --device); keys are dotted, as in config.toml: versioning.type, max_recv_kbps,
    discovery.global_servers, addresses."""


scope_options = [
    click.option("--folder", "folder_id", default="", help="A folder's settings."),
    click.option("--device", "device", default="", help="A device's settings (ID or name)."),
]


def _with_scope(fn: Any) -> Any:
    for option in reversed(scope_options):
        fn = option(fn)
    return fn


def _scope(obj: Context, folder_id: str, device: str) -> Scope:
    if folder_id and device:
        raise click.UsageError("give --folder or --device, not both")
    if folder_id:
        return Scope("folder", folder_id)
    if device:
        return Scope("device", str(device_by_id_or_name(obj.config(), device)))
    return Scope()


def _path(scope: Scope) -> str:
    if scope.kind == "folder":
        return f"/api/folders/{url_segment(scope.id)}/settings"
    if scope.kind == "device":
        return f"/api/devices/{url_segment(scope.id)}/settings"
    return "/api/settings"


def apply_change(obj: Context, scope: Scope, body: dict[str, Any]) -> list[str]:
    """Make the change through the daemon, or in the config file when none runs; returns
    the keys that wait for a restart."""
    cfg = obj.config()
    new = change_settings(
        cfg,
        scope,
        set_values=body.get("set"),
        add=body.get("add"),
        remove=body.get("remove"),
    )  # refused here, the same way, before anything is sent
    client = obj.daemon()
    if client is None:
        obj.offline.save_config(new)
        return []
    answer = client.request("PATCH", _path(scope), json=body)
    return list(answer.get("restart_needed") or [])


def report(what: str, scope: Scope, restart: list[str]) -> None:
    where = "" if scope.kind == "node" else f" of {scope.describe()}"
    click.echo(f"{what}{safe(where)}")
    if restart:
        click.echo(
            f"note: not applied to the running daemon: {', '.join(restart)} (takes effect "
            "when it restarts; see `p2psync log` if it could not be applied); the rest is"
            " applied now"
        )


@config_group.command("show")
@_with_scope
@click.argument("key", required=False)
@json_option
@click.pass_obj
def config_show(obj: Context, folder_id: str, device: str, key: str | None, as_json: bool) -> None:
    """Show the settings (or the one KEY)."""
    scope = _scope(obj, folder_id, device)
    cfg = obj.config()
    data = get_setting(cfg, scope, key) if key else settings_of(cfg, scope)

    def human() -> None:
        if key:
            click.echo(safe(json.dumps(data)))
            return
        for line in _flat(data):
            click.echo(safe(line))

    emit(data, as_json, human)


def _flat(table: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for k, v in table.items():
        if isinstance(v, dict):
            lines.extend(_flat(v, f"{prefix}{k}."))
        else:
            lines.append(f"{prefix}{k} = {json.dumps(v)}")
    return lines


@config_group.command("set")
@_with_scope
@click.argument("key")
@click.argument("values", nargs=-1, required=True)
@click.pass_obj
def config_set(
    obj: Context, folder_id: str, device: str, key: str, values: tuple[str, ...]
) -> None:
    """Set KEY to VALUE (a list setting takes every VALUE given)."""
    scope = _scope(obj, folder_id, device)
    value = coerce(get_setting(obj.config(), scope, key), key, values)
    restart = apply_change(obj, scope, {"set": {key: value}})
    report(f"Set {key} = {json.dumps(value)}", scope, restart)


@config_group.command("add")
@_with_scope
@click.argument("key")
@click.argument("values", nargs=-1, required=True)
@click.pass_obj
def config_add(
    obj: Context, folder_id: str, device: str, key: str, values: tuple[str, ...]
) -> None:
    """Add VALUEs to the list setting KEY (e.g. addresses, discovery.global_servers)."""
    scope = _scope(obj, folder_id, device)
    restart = apply_change(obj, scope, {"add": {key: list(values)}})
    report(f"Added {', '.join(values)} to {key}", scope, restart)


@config_group.command("remove")
@_with_scope
@click.argument("key")
@click.argument("values", nargs=-1, required=True)
@click.pass_obj
def config_remove(
    obj: Context, folder_id: str, device: str, key: str, values: tuple[str, ...]
) -> None:
    """Remove VALUEs from the list setting KEY."""
    scope = _scope(obj, folder_id, device)
    restart = apply_change(obj, scope, {"remove": {key: list(values)}})
    report(f"Removed {', '.join(values)} from {key}", scope, restart)


@config_group.command("reload")
@click.pass_obj
def config_reload(obj: Context) -> None:
    """Make the daemon re-read config.toml now (it also does within a second)."""
    answer = obj.need_daemon().post("/api/config/reload")
    report("Reloaded the configuration", Scope(), list(answer.get("restart_needed") or []))


# ---- shortcuts for the common list edits ------------------------------------------------


@click.command("unshare")
@click.argument("folder_id")
@click.argument("device")
@click.pass_obj
def folder_unshare(obj: Context, folder_id: str, device: str) -> None:
    """Stop sharing FOLDER with one DEVICE (ID or name); the others keep it."""
    did = device_by_id_or_name(obj.config(), device)
    apply_change(obj, Scope("folder", folder_id), {"remove": {"devices": [str(did)]}})
    click.echo(f"Folder {safe(folder_id)!r} is no longer shared with {did}")


@click.command("remove-address")
@click.argument("device")
@click.argument("address")
@click.pass_obj
def peer_remove_address(obj: Context, device: str, address: str) -> None:
    """Forget one ADDRESS of DEVICE (ID or name); the last one leaves `dynamic`."""
    did = device_by_id_or_name(obj.config(), device)
    apply_change(obj, Scope("device", str(did)), {"remove": {"addresses": [address]}})
    click.echo(f"Removed {safe(address)} from {did}")
