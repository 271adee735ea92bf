"""`p2psync status`, `events` and `folder completion`: live state, read from the daemon."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from ..errors import NotFoundError
from ..textsafe import safe
from .support import Context, device_by_id_or_name, emit, json_option, url_segment

if TYPE_CHECKING:  # the HTTP client (httpx) is imported only by commands that use it,
    from ..api.client import ApiClient  # which keeps `p2psync run` lean


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


# ---- status / events ---------------------------------------------------------------------


def _status_data(client: ApiClient) -> dict[str, Any]:
    return {
        "system": client.get("/api/system"),
        "folders": client.get("/api/folders"),
        "devices": client.get("/api/devices"),
    }


def _console() -> Any:
    from rich.console import Console

    out = sys.stdout
    terminal = out.isatty()
    return Console(file=out, highlight=False, width=None if terminal else 160)


@click.command()
@json_option
@click.option("--watch", is_flag=True, help="Refresh the view until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.pass_obj
def status(obj: Context, as_json: bool, watch: bool, interval: float) -> None:
    """Folders (state, progress), devices (connections, rates); needs the daemon."""
    from ..api.render import status_renderable

    client = obj.need_daemon()
    if not watch:
        data = _status_data(client)
        emit(data, as_json, lambda: _console().print(status_renderable(data)))
        return
    with _interrupt_flag() as interrupted:
        if as_json:
            while not interrupted.is_set():
                click.echo(json.dumps(_status_data(client), sort_keys=True, default=str))
                interrupted.wait(interval)
            return
        from rich.live import Live

        with Live(
            status_renderable(_status_data(client)), console=_console(), auto_refresh=False
        ) as live:
            while not interrupted.wait(interval):
                live.update(status_renderable(_status_data(client)), refresh=True)


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) sets the flag instead of raising KeyboardInterrupt, so a refresh
    ends between two requests: an interrupt inside the HTTP client once left its
    connection pool locked, and the command hung on its way out."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new events until Ctrl-C.")
@click.option(
    "--since",
    type=int,
    default=None,
    help="Only events after this id (default: all buffered, or only new ones with --follow).",
)
@click.option("--types", default="", help="Comma-separated event types to show.")
@json_option
@click.pass_obj
def events(obj: Context, follow: bool, since: int | None, types: str, as_json: bool) -> None:
    """What happened in the daemon: scans, index updates, items, conflicts, connections."""
    from ..api.render import event_line

    client = obj.need_daemon()
    params: dict[str, Any] = {"types": types} if types else {}
    if since is None:
        since = (
            client.get("/api/events", params={**params, "since": 2**62, "timeout": 0})["last_id"]
            if follow
            else 0
        )

    def show(batch: list[dict[str, Any]]) -> None:
        for e in batch:
            click.echo(json.dumps(e, sort_keys=True, default=str) if as_json else event_line(e))

    if not follow:
        batch = client.get("/api/events", params={**params, "since": since, "timeout": 0})["events"]
        if as_json:
            click.echo(json.dumps(batch, indent=2, sort_keys=True, default=str))
        else:
            show(batch)
        return
    try:
        while True:
            batch = client.get(
                "/api/events", params={**params, "since": since, "timeout": 30}, timeout=45
            )["events"]
            show(batch)
            if batch:
                since = batch[-1]["id"]
    except KeyboardInterrupt:
        return
