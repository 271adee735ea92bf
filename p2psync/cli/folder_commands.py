"""`p2psync folder ...`: shared folders; and the top-level `scan`, which shares its code."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ..api import edits
from ..config import folder_to_dict
from ..errors import NotFoundError
from ..textsafe import safe
from ..values import FOLDER_TYPES, FolderKind
from .support import Context, emit, json_option, parse_device_id, url_segment

# ---- folders ---------------------------------------------------------------------------

folder_type_option = click.option(
    "--type", "folder_type", type=click.Choice(FOLDER_TYPES), default=FolderKind.SEND_RECEIVE.value
)


@click.group()
def folder() -> None:
    """Manage shared folders."""


@folder.command("add")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--id", "folder_id", help="Folder ID (same on every device; default: from the name).")
@click.option("--label", default="", help="Human-readable label.")
@folder_type_option
@click.option("--share", "share", multiple=True, help="Device ID to share with (repeatable).")
@click.pass_obj
def folder_add(
    obj: Context,
    path: Path,
    folder_id: str | None,
    label: str,
    folder_type: str,
    share: tuple[str, ...],
) -> None:
    """Add a folder to synchronise (created if missing)."""
    cfg = obj.config()
    abs_path = path.expanduser().absolute()
    devices = [parse_device_id(d) for d in share]
    new = edits.add_folder(
        cfg,
        abs_path,
        folder_id=folder_id,
        label=label,
        folder_type=folder_type,
        share=devices,
        home=obj.home,
    )
    client = obj.daemon()
    if client is not None:
        client.post(
            "/api/folders",
            {
                "path": str(abs_path),
                "id": new.id,
                "label": new.label,
                "type": folder_type,
                "devices": [str(d) for d in devices],
            },
        )
    else:
        obj.offline.add_folder(cfg, new, abs_path)
    click.echo(f"Added folder {new.id!r} at {safe(str(abs_path))}")


@folder.command("share")
@click.argument("folder_id")
@click.argument("device_id")
@click.pass_obj
def folder_share(obj: Context, folder_id: str, device_id: str) -> None:
    """Share an existing folder with a trusted device."""
    did = parse_device_id(device_id)
    cfg = obj.config()
    new, already = edits.share_folder(cfg, folder_id, did)
    if already:
        click.echo(f"Folder {folder_id!r} is already shared with {did}")
        return
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/folders/{url_segment(folder_id)}/share", {"device": str(did)})
    else:
        obj.offline.save_config(new)
    click.echo(f"Shared folder {folder_id!r} with {did}")


@folder.command("list")
@json_option
@click.pass_obj
def folder_list(obj: Context, as_json: bool) -> None:
    """List folders."""
    cfg = obj.config()

    def human() -> None:
        if not cfg.folders:
            click.echo("No folders. Add one with: p2psync folder add PATH")
        for f in cfg.folders:
            flags = " (paused)" if f.paused else ""
            click.echo(f"{f.id}  {safe(f.label)}  {safe(f.path)}  [{f.type}]{flags}")
            for d in f.devices:
                dev = cfg.device(d)
                click.echo(f"    shared with {d} {safe(dev.name) if dev else ''}")

    emit([folder_to_dict(f) for f in cfg.folders], as_json, human)


@folder.command("remove")
@click.argument("folder_id")
@click.pass_obj
def folder_remove(obj: Context, folder_id: str) -> None:
    """Stop synchronising a folder (its files stay on disk)."""
    new = edits.remove_folder(obj.config(), folder_id)
    client = obj.daemon()
    if client is not None:
        client.delete(f"/api/folders/{url_segment(folder_id)}")
    else:
        obj.offline.save_config(new)
    click.echo(f"Removed folder {folder_id!r} (files left in place)")


def _folder_pause(obj: Context, folder_id: str, paused: bool) -> None:
    new = edits.set_folder_paused(obj.config(), folder_id, paused)
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/folders/{url_segment(folder_id)}/{'pause' if paused else 'resume'}")
    else:
        obj.offline.save_config(new)
    click.echo(f"{'Paused' if paused else 'Resumed'} folder {folder_id!r}")


@folder.command("pause")
@click.argument("folder_id")
@click.pass_obj
def folder_pause(obj: Context, folder_id: str) -> None:
    """Pause a folder: no scanning, pulling or sending."""
    _folder_pause(obj, folder_id, True)


@folder.command("resume")
@click.argument("folder_id")
@click.pass_obj
def folder_resume(obj: Context, folder_id: str) -> None:
    """Resume a paused folder."""
    _folder_pause(obj, folder_id, False)


@folder.command("pending")
@json_option
@click.pass_obj
def folder_pending(obj: Context, as_json: bool) -> None:
    """Folders that trusted devices offered but that are not set up here."""
    entries = obj.offline.pending_folders()

    def human() -> None:
        here = {f.id for f in obj.config().folders}
        if not entries:
            click.echo("No pending folders.")
        for e in entries:
            click.echo(f"{safe(e.folder_id)}  {safe(e.label)}  offered by {e.device_id}")
            if e.folder_id in here:  # accepted into the existing folder of that ID
                fid = safe(e.folder_id)
                click.echo(f"    exists here; share it with: p2psync folder accept {fid}")
            else:
                click.echo(f"    accept with: p2psync folder accept {safe(e.folder_id)} [PATH]")

    emit([asdict(e) for e in entries], as_json, human)


@folder.command("accept")
@click.argument("folder_id")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@folder_type_option
@click.pass_obj
def folder_accept(obj: Context, folder_id: str, path: Path | None, folder_type: str) -> None:
    """Accept a pending folder, sharing it back with the devices that offered it."""
    cfg = obj.config()
    target = (
        path.expanduser().absolute()
        if path
        else edits.default_accept_path(cfg, folder_id, obj.home)
    )
    offers = obj.offline.pending_folders()
    new = edits.accept_folder(cfg, offers, folder_id, target, obj.home, folder_type)
    existed = cfg.folder(folder_id) is not None
    target = new.resolved_path
    client = obj.daemon()
    if client is not None:
        client.post(
            f"/api/pending/folders/{url_segment(folder_id)}/accept",
            {"path": str(target), "type": folder_type},
        )
    else:
        obj.offline.add_folder(cfg, new, target)
    into = "into the existing folder " if existed else ""
    click.echo(f"Accepted folder {folder_id!r} {into}at {safe(str(target))}")


@folder.command("reject")
@click.argument("folder_id")
@click.pass_obj
def folder_reject(obj: Context, folder_id: str) -> None:
    """Forget a pending folder offer (it is listed again if offered again)."""
    if not any(e.folder_id == folder_id for e in obj.offline.pending_folders()):
        raise NotFoundError(f"no pending folder {folder_id!r} (see `p2psync folder pending`)")
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/pending/folders/{url_segment(folder_id)}/reject")
    else:
        obj.offline.forget_pending_folder(folder_id)
    click.echo(f"Rejected folder {safe(folder_id)!r}")


def _folder_action(obj: Context, folder_id: str, action: str) -> dict[str, Any]:
    if obj.config().folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    return obj.need_daemon().post(f"/api/folders/{url_segment(folder_id)}/{action}")


@folder.command("scan")
@click.argument("folder_id")
@click.argument("paths", nargs=-1)
@click.pass_obj
def folder_scan(obj: Context, folder_id: str, paths: tuple[str, ...]) -> None:
    """Scan a folder now (or only the given folder-relative paths)."""
    scan_folders(obj, folder_id, list(paths))


@folder.command("override")
@click.argument("folder_id")
@click.pass_obj
def folder_override(obj: Context, folder_id: str) -> None:
    """Send-only folder: make every device match this one."""
    _folder_action(obj, folder_id, "override")
    click.echo(f"Overriding the cluster with this device's version of {folder_id!r}")


@folder.command("revert")
@click.argument("folder_id")
@click.pass_obj
def folder_revert(obj: Context, folder_id: str) -> None:
    """Receive-only folder: undo local changes and take the cluster's versions."""
    n = _folder_action(obj, folder_id, "revert")["reverted"]
    click.echo(f"Reverting {n} local change(s) in {folder_id!r}")


@folder.command("confirm-deletes")
@click.argument("folder_id")
@click.pass_obj
def folder_confirm_deletes(obj: Context, folder_id: str) -> None:
    """Allow a large remote delete that paused the folder."""
    _folder_action(obj, folder_id, "confirm-deletes")
    click.echo(f"Confirmed: applying the pending deletes in {folder_id!r}")


def scan_folders(obj: Context, folder_id: str | None, paths: list[str]) -> None:
    client = obj.need_daemon()
    ids = [folder_id] if folder_id else [f.id for f in obj.config().folders]
    if folder_id and obj.config().folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    for fid in ids:
        client.post(f"/api/folders/{url_segment(fid)}/scan", {"paths": paths} if paths else {})
        click.echo(
            f"Scanning {fid!r}{' (' + ', '.join(safe(p) for p in paths) + ')' if paths else ''}"
        )
    if not ids:
        click.echo("No folders to scan.")


@click.command("scan")
@click.argument("folder_id", required=False)
@click.pass_obj
def scan_cmd(obj: Context, folder_id: str | None) -> None:
    """Scan one folder, or every folder, now."""
    scan_folders(obj, folder_id, [])
