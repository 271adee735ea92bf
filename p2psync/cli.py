"""The p2psync command line: the one place errors become messages and exit codes.

Control commands talk to the running daemon through its API (so config changes apply
without a restart); when no daemon runs, config-changing commands edit the config file
directly, and commands that need live state fail with DaemonNotRunningError (exit 4).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .api.auth import API_KEY_FILE, ensure_api_key
from .cli_folder import folder, scan_folders
from .cli_link import link
from .cli_peer import peer
from .cli_relay import relay
from .cli_settings import config_group, folder_unshare, peer_remove_address
from .cli_status import folder_completion
from .cli_support import Context, ErrorGroup, emit, json_option, url_segment
from .cli_web import open_web, web_password
from .config import (
    DEFAULT_API_PORT,
    Config,
    FolderConfig,
    argument_errors,
    default_home,
    folder_path_problem,
    save_config,
    validate_host_port,
    validate_listen_url,
)
from .errors import ConfigError, NotFoundError, UsageError
from .identity import load_identity, load_or_create_identity
from .logsetup import LOG_FILE
from .textsafe import safe

if TYPE_CHECKING:  # the HTTP client (httpx) is imported only by commands that use it,
    from .api.client import ApiClient  # which keeps `p2psync run` lean

__all__ = ["API_KEY_FILE", "cli", "main"]


@click.group(cls=ErrorGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Node home (config, keys, index). Default: $P2PSYNC_HOME or the platform data dir.",
)
@click.version_option(__version__, prog_name="p2psync")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """p2psync: keep folders identical across your devices, peer to peer."""
    ctx.obj = Context((home or default_home()).expanduser().absolute())


cli.add_command(peer)
cli.add_command(folder)
folder.add_command(folder_completion)
folder.add_command(folder_unshare)
peer.add_command(peer_remove_address)
cli.add_command(config_group)
cli.add_command(open_web)
cli.add_command(web_password)
cli.add_command(relay)
cli.add_command(link)


# ---- init / id / run / log ---------------------------------------------------------------


@cli.command()
@click.option("--name", help="This device's name (default: the host name).")
@click.option("--listen", "listen", multiple=True, help="Listen address, e.g. tcp://0.0.0.0:22001.")
@click.option("--api", help=f"Control API address (default 127.0.0.1:{DEFAULT_API_PORT}).")
@click.option("--no-mdns", is_flag=True, help="Disable LAN discovery (mDNS).")
@click.option("--no-default-folder", is_flag=True, help="Do not create the default ~/Sync folder.")
@click.option(
    "--default-folder-path",
    default="~/Sync",
    show_default=True,
    help="Where the default folder lives.",
)
@click.pass_obj
def init(
    obj: Context,
    name: str | None,
    listen: tuple[str, ...],
    api: str | None,
    no_mdns: bool,
    no_default_folder: bool,
    default_folder_path: str,
) -> None:
    """Create this device's identity and config (keeps an existing identity)."""
    home = obj.home
    if (home / "config.toml").exists():
        raise UsageError(f"{home} is already initialised (device {load_identity(home).device_id})")
    identity, _created = load_or_create_identity(home)
    cfg = Config()
    if name:
        cfg = replace(cfg, name=name)
    if listen:
        for i, url in enumerate(listen):
            with argument_errors():
                validate_listen_url(url, f"--listen[{i}]")
        cfg = replace(cfg, listen=tuple(listen))
    if api:
        with argument_errors():
            cfg = replace(cfg, api=validate_host_port(api, "--api"))
    if no_mdns:
        cfg = replace(cfg, discovery=replace(cfg.discovery, mdns=False))
    if not no_default_folder:
        problem = folder_path_problem(cfg, default_folder_path, home)
        if problem is not None:
            raise UsageError(f"--default-folder-path: {problem}")
        cfg = cfg.with_folder(
            FolderConfig(id="default", label="Default Folder", path=default_folder_path)
        )
    save_config(cfg, home)
    _write_api_key(home)
    click.echo(f"Initialised p2psync in {home}")
    click.echo(f"Device ID: {identity.device_id}")
    click.echo("")
    click.echo("Next steps:")
    click.echo("  p2psync run                            # start the daemon")
    click.echo("  p2psync peer add OTHER-DEVICE-ID       # trust another device (on both sides)")
    if not no_default_folder:
        click.echo("  p2psync folder share default OTHER-ID  # share the default folder with it;")
        click.echo("  p2psync folder accept default          # ... and accept it on the other side")
    click.echo("  p2psync status                         # see folders, devices and progress")


def _write_api_key(home: Path) -> None:
    ensure_api_key(home)


@cli.command("id")
@json_option
@click.pass_obj
def show_id(obj: Context, as_json: bool) -> None:
    """Print this device's ID."""
    device_id = load_identity(obj.home).device_id
    emit({"device_id": str(device_id)}, as_json, lambda: click.echo(str(device_id)))


@cli.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def run(obj: Context, verbose: bool) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM."""
    import trio

    from .app import run_daemon
    from .homelock import lock_home
    from .logsetup import setup_logging

    if not (obj.home / "config.toml").exists():
        raise ConfigError(f"no config at {obj.home / 'config.toml'}; run `p2psync init` first")
    # One daemon per home: locked before the log, keys or index are opened.
    with lock_home(obj.home) as home_lock:
        setup_logging(obj.home, logging.DEBUG if verbose else logging.INFO)
        _write_api_key(obj.home)
        trio.run(run_daemon, obj.home, home_lock)


@cli.command("log")
@click.option(
    "--tail", "tail", type=click.IntRange(min=0), default=None, help="Also print the last N lines."
)
@click.pass_obj
def show_log(obj: Context, tail: int | None) -> None:
    """Print where the daemon's log file is (and optionally its last lines)."""
    path = obj.home / LOG_FILE
    click.echo(str(path))
    if tail:
        try:
            lines = path.read_text("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            raise NotFoundError(f"no log yet at {path} (the daemon has not run)") from None
        for line in lines[-tail:]:
            click.echo(safe(line))


# ---- scan / status / events -------------------------------------------------------------


@cli.command("scan")
@click.argument("folder_id", required=False)
@click.pass_obj
def scan_cmd(obj: Context, folder_id: str | None) -> None:
    """Scan one folder, or every folder, now."""
    scan_folders(obj, folder_id, [])


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


@cli.command()
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
    from .api.render import status_renderable

    client = obj.need_daemon()
    if not watch:
        data = _status_data(client)
        emit(data, as_json, lambda: _console().print(status_renderable(data)))
        return
    if as_json:
        try:
            while True:
                click.echo(json.dumps(_status_data(client), sort_keys=True, default=str))
                time.sleep(interval)
        except KeyboardInterrupt:
            return
    from rich.live import Live

    console = _console()
    try:
        with Live(
            status_renderable(_status_data(client)), console=console, auto_refresh=False
        ) as live:
            while True:
                time.sleep(interval)
                live.update(status_renderable(_status_data(client)), refresh=True)
    except KeyboardInterrupt:
        return


@cli.command()
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
    from .api.render import event_line

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


# ---- conflicts / versions / ignore ---------------------------------------------------------


@cli.command()
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


@cli.group()
def versions() -> None:
    """Old versions of files kept by the folder's versioning."""


def _local_versioning(obj: Context, folder_id: str) -> tuple[Any, Any, Any]:
    """(versioner module, folder filesystem, versioner) for offline use."""
    from .fs.basic import BasicFS
    from .sync import versioner as module

    fc = obj.config().folder(folder_id)
    if fc is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    fs = BasicFS(fc.resolved_path)
    return module, fs, module.make_versioner(fs, fc.versioning)


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
        module, fs, _ = _local_versioning(obj, folder_id)
        items = [
            {
                "name": v.name,
                "time": v.version_time.isoformat(),
                "timestamp": v.timestamp,
                "size": v.size,
                "archive_name": v.archive_name,
            }
            for v in module.list_versions(fs, path)
        ]

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
    from .api.app import parse_time

    when = parse_time(at)
    client = obj.daemon()
    if client is not None:
        result = client.post(
            f"/api/folders/{url_segment(folder_id)}/versions/restore", {"path": path, "at": at}
        )
        source = result["restored_from"]
    else:
        module, fs, versioner = _local_versioning(obj, folder_id)
        source = module.restore(fs, path, when, versioner=versioner)
    click.echo(f"Restored {safe(path)} from {safe(source)}")


@cli.group()
def ignore() -> None:
    """Ignore patterns (.p2pignore)."""


@ignore.command("check")
@click.argument("folder_id")
@click.argument("path")
@json_option
@click.pass_obj
def ignore_check(obj: Context, folder_id: str, path: str, as_json: bool) -> None:
    """Is PATH (folder-relative) ignored in FOLDER, and by which pattern?"""
    from .scanner.ignore import Ignore

    fc = obj.config().folder(folder_id)
    if fc is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    name = path.strip("/")
    match = Ignore.load(fc.resolved_path).match(name)
    data: dict[str, Any] = {
        "folder": folder_id,
        "path": name,
        "ignored": bool(match and match.ignored),
    }
    if match is not None:
        data.update(
            pattern=match.pattern.text,
            file=match.pattern.file,
            line=match.pattern.line,
            deletable=match.deletable,
        )

    def human() -> None:
        if match is None:
            click.echo(f"{safe(name)}: not ignored (no pattern matches)")
        else:
            verdict = "ignored" if match.ignored else "not ignored"
            where = f"{safe(match.pattern.file)}:{match.pattern.line}"
            click.echo(f"{safe(name)}: {verdict} by {where}: {safe(match.pattern.text)}")

    emit(data, as_json, human)


# ---- demo ---------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=25.0,
    show_default=True,
    help="Give up after this many seconds.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary directory (its path is printed).")
def demo(timeout: float, keep: bool) -> None:
    """Start two nodes on loopback, share a folder, watch a file arrive, clean up."""
    from .api.demo import run_demo

    run_demo(click.echo, timeout=timeout, keep=keep)


def main() -> None:
    cli(prog_name="p2psync")


if __name__ == "__main__":
    main()
