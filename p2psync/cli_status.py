"""`p2psync folder completion`: how much of a folder a device has (needs the daemon)."""

from __future__ import annotations

import click

from .cli_support import Context, emit, json_option, url_segment
from .config import Config
from .errors import NotFoundError
from .identity import DeviceID
from .textsafe import safe


def device_by_id_or_name(cfg: Config, text: str) -> DeviceID:
    """A configured device named by its ID or by its (unique) name."""
    named = [d for d in cfg.devices if d.name == text]
    if len(named) == 1:
        return named[0].device_id
    return DeviceID.parse(text)


@click.command("completion")
@click.argument("folder_id")
@click.option("--device", default="", help="Device ID or name (default: this device).")
@json_option
@click.pass_obj
def folder_completion(obj: Context, folder_id: str, device: str, as_json: bool) -> None:
    """How much of FOLDER a device has, by bytes (like Syncthing's completion)."""
    cfg = obj.config()
    if cfg.folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    params = {"device": str(device_by_id_or_name(cfg, device))} if device else None
    data = obj.need_daemon().get(f"/api/folders/{url_segment(folder_id)}/completion", params=params)

    def human() -> None:
        if data.get("need_items") is None:
            click.echo(f"{safe(folder_id)}: {data['device']} has not sent its index yet")
            return
        click.echo(
            f"{safe(folder_id)}: {data['completion']:.1f}% on {data['device']} "
            f"({data['need_items']} items, {data['need_bytes']} bytes to go)"
        )

    emit(data, as_json, human)
