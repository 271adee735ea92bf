"""`p2psync conflicts`, `p2psync versions ...` and `p2psync history`: conflict copies,
archived versions and who changed what, when."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from ..config import Config
from ..errors import NotFoundError, UsageError
from ..textsafe import safe
from .support import Context, emit, json_option, url_segment


@click.command()
@click.argument("folder_id", required=False)
@json_option
@click.pass_obj
def conflicts(obj: Context, folder_id: str | None, as_json: bool) -> None:
    """List conflict copies (``*.sync-conflict-*``) in one or every folder; needs the daemon."""
    cfg = obj.config()
    if folder_id and cfg.folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    client = obj.need_daemon()
    ids = [folder_id] if folder_id else [f.id for f in cfg.folders]
    data = {
        fid: client.get(f"/api/folders/{url_segment(fid)}/conflicts")["conflicts"] for fid in ids
    }

    def human() -> None:
        total = sum(len(v) for v in data.values())
        if not total:
            click.echo("No conflicts.")
        for fid, items in data.items():
            for c in items:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["modified"]))
                click.echo(f"{safe(fid)}: {safe(c['name'])}  ({c['size']} bytes, {when})")

    emit(data, as_json, human)


@click.group()
def versions() -> None:
    """Old versions of files kept by the folder's versioning."""


@versions.command("list")
@click.argument("folder_id")
@click.argument("path", required=False)
@json_option
@click.pass_obj
def versions_list(obj: Context, folder_id: str, path: str | None, as_json: bool) -> None:
    """List archived versions in a folder (of one file, or all)."""
    client = obj.daemon()
    if client is not None:
        items = client.get(
            f"/api/folders/{url_segment(folder_id)}/versions",
            params={"path": path} if path else None,
        )["versions"]
    else:
        items = obj.offline.list_versions(folder_id, path)

    def human() -> None:
        if not items:
            click.echo("No archived versions.")
        for v in items:
            click.echo(f"{safe(v['name'])}  {v['time']}  {v['size']} bytes")

    emit(items, as_json, human)


@versions.command("restore")
@click.argument("folder_id")
@click.argument("path")
@click.option(
    "--at",
    "at",
    default=None,
    help="Newest version at or before this time (ISO 8601 or Unix seconds).",
)
@click.pass_obj
def versions_restore(obj: Context, folder_id: str, path: str, at: str | None) -> None:
    """Put an archived version of PATH back (the current file is archived first)."""
    when = obj.offline.restore_point(at)
    client = obj.daemon()
    if client is not None:
        result = client.post(
            f"/api/folders/{url_segment(folder_id)}/versions/restore", {"path": path, "at": at}
        )
        source = result["restored_from"]
    else:
        source = obj.offline.restore_version(folder_id, path, when)
    click.echo(f"Restored {safe(path)} from {safe(source)}")


@click.command("history")
@click.argument("path", required=False)
@click.option("--folder", "folder_id", help="The folder (default: the one PATH is in).")
@click.option("--since", help="Only changes in this last span, e.g. 2d, 12h, 30m.")
@click.option("--device", help="Only changes made by this device (name or ID).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@json_option
@click.pass_obj
def history(
    obj: Context,
    path: str | None,
    folder_id: str | None,
    since: str | None,
    device: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Who changed what, when: PATH's history (a file or directory in a folder, with the
    versions that can still be restored), or a folder's with --folder."""
    from .link_commands import parse_duration

    cfg = obj.config()
    name: str | None = None
    if path is not None:
        folder_id, name = _folder_and_name(cfg, path, folder_id)
    if not folder_id:
        raise UsageError("give a PATH inside a folder, or --folder FOLDER")
    if cfg.folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    params: dict[str, str] = {"folder": folder_id, "limit": str(limit)}
    if name:
        params["path"] = name
    if since:
        params["since"] = str(time.time() - parse_duration(since))
    if device:
        params["device"] = device
    client = obj.daemon()
    if client is not None:
        data = client.get("/api/history", params=params)
    else:
        data = obj.offline.history(params)

    def human() -> None:
        entries = data["entries"]
        if not entries:
            click.echo("No recorded changes.")
        for e in entries:
            who = e["device_name"] or e["device"][:7]
            extra = f" ({safe(e['detail'])})" if e["detail"] else ""
            size = f", {e['size']} bytes" if e["type"] == "file" and e["kind"] != "deleted" else ""
            click.echo(
                f"{e['time']}  {safe(e['path'])}  {e['kind']}{extra}  by {safe(who)}"
                f" [{e['origin']}{size}]"
            )
        if name and data.get("versions") is not None:
            versions = data["versions"]
            click.echo(
                f"Versions that can be restored: {len(versions)}"
                + "".join(
                    f"\n  {v['time']}  {safe(v['name'])}  {v['size']} bytes" for v in versions
                )
            )

    emit(data, as_json, human)


def _folder_and_name(cfg: Config, path: str, folder_id: str | None) -> tuple[str, str]:
    """(folder ID, name in it) for a path on disk, or FOLDER-relative with --folder."""
    if folder_id is not None and not os.path.isabs(path) and not os.path.exists(path):
        return folder_id, path.strip("/")
    target = Path(path).expanduser().absolute()
    for fc in cfg.folders:
        root = Path(fc.resolved_path).absolute()
        if target == root or root in target.parents:
            if folder_id is not None and folder_id != fc.id:
                continue
            return fc.id, target.relative_to(root).as_posix().strip(".")
    raise NotFoundError(f"{path} is not inside a shared folder")
