"""`p2psync folder select / unselect / selection`: selective sync (docs/selective-sync.md).

With the daemon running the change goes through its API (applied at once: left-out
copies in sync are removed, newly selected paths pulled); without it, config.toml is
edited and the daemon applies the selection when it starts.
"""

from __future__ import annotations

from typing import Any

import click

from ..api import edits
from ..config import Config
from ..textsafe import safe
from .support import Context, emit, json_option, url_segment


def _apply(
    obj: Context, folder_id: str, new: Config, action: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    """Send ``action`` to the daemon (its answer), or save ``new`` offline (None)."""
    client = obj.daemon()
    if client is None:
        obj.offline.save_config(new)
        return None
    path = f"/api/folders/{url_segment(folder_id)}/selection"
    if action == "set":
        return client.request("PUT", path, json=body)
    return client.post(f"{path}/{action}", body)


def _say(folder_id: str, new: Config, answer: dict[str, Any] | None) -> None:
    fc = new.folder(folder_id)
    assert fc is not None
    if not fc.selected:
        click.echo(f"{safe(folder_id)}: keeps the whole folder")
    else:
        click.echo(f"{safe(folder_id)}: keeps only {', '.join(safe(p) for p in fc.selected)}")
    if answer is None:
        click.echo("(the daemon is not running: applied when it starts)")


@click.command("select")
@click.argument("folder_id")
@click.argument("paths", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Keep the whole folder again.")
@click.pass_obj
def folder_select(obj: Context, folder_id: str, paths: tuple[str, ...], everything: bool) -> None:
    """Keep PATHS (folder-relative directories) of FOLDER on this device too.

    From the whole folder, this device then keeps only PATHS; anything else is not
    downloaded, and local copies in sync with another device are removed (never a
    local change). Peers keep their copies. --all keeps everything again."""
    cfg = obj.config()
    if everything:
        if paths:
            raise click.UsageError("give either PATHS or --all, not both")
        new = edits.set_selection(cfg, folder_id, ())
        answer = _apply(obj, folder_id, new, "set", {"selected": []})
    else:
        new = edits.select_paths(cfg, folder_id, list(paths))
        answer = _apply(obj, folder_id, new, "select", {"paths": list(paths)})
    _say(folder_id, new, answer)


@click.command("unselect")
@click.argument("folder_id")
@click.argument("paths", nargs=-1, required=True)
@click.pass_obj
def folder_unselect(obj: Context, folder_id: str, paths: tuple[str, ...]) -> None:
    """Stop keeping PATHS of FOLDER on this device.

    Local copies in sync with another device are removed; a local change, or a file no
    other device has yet, stays (see `p2psync folder selection`). No deletion is sent:
    the other devices keep their copies."""
    new = edits.unselect_paths(obj.config(), folder_id, list(paths))
    answer = _apply(obj, folder_id, new, "unselect", {"paths": list(paths)})
    _say(folder_id, new, answer)


@click.command("selection")
@click.argument("folder_id")
@json_option
@click.pass_obj
def folder_selection(obj: Context, folder_id: str, as_json: bool) -> None:
    """What FOLDER keeps on this device, and (daemon running) what it leaves out."""
    cfg = obj.config()
    fc = edits.folder_config(cfg, folder_id)
    client = obj.daemon()
    data: dict[str, Any] = (
        client.get(f"/api/folders/{url_segment(folder_id)}/selection")
        if client is not None
        else {"folder": fc.id, "selected": list(fc.selected), "everything": not fc.selected}
    )

    def human() -> None:
        from ..api.render import human_bytes  # rich: only for commands that print with it

        if data["everything"]:
            click.echo(f"{safe(folder_id)}: the whole folder (no selection)")
        else:
            click.echo(f"{safe(folder_id)}: keeps only")
            for p in data["selected"]:
                click.echo(f"    {safe(p)}")
        if "left_out_items" in data:
            click.echo(
                f"left out: {data['left_out_items']} items, {human_bytes(data['left_out_bytes'])}"
            )
            if data["kept_count"]:
                click.echo(f"kept here outside the selection: {data['kept_count']}")
                for k in data["kept"][:50]:
                    click.echo(f"    {safe(k['name'])}: {safe(k['reason'])}")

    emit(data, as_json, human)
