"""`p2psync conflicts` and `p2psync versions ...`: conflict copies and archived versions."""

from __future__ import annotations

import time

import click

from ..errors import NotFoundError
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
