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
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from . import __version__
from .api import edits
from .api.auth import API_KEY_FILE, ensure_api_key
from .config import (
    DEFAULT_API_PORT,
    FOLDER_TYPES,
    Config,
    FolderConfig,
    default_home,
    load_config,
    save_config,
    validate_host_port,
    validate_listen_url,
)
from .errors import ConfigError, DaemonNotRunningError, NotFoundError, P2PSyncError, UsageError
from .identity import DeviceID, load_identity, load_or_create_identity
from .logsetup import LOG_FILE
from .pending import PendingStore
from .textsafe import safe

if TYPE_CHECKING:  # the HTTP client (httpx) is imported only by commands that use it,
    from .api.client import ApiClient  # which keeps `p2psync run` lean

__all__ = ["API_KEY_FILE", "cli", "main"]


class Context:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._client: ApiClient | None = None
        self._probed = False

    def config(self) -> Config:
        return load_config(self.home)

    def save(self, cfg: Config) -> None:
        save_config(cfg, self.home)

    def own_id(self) -> DeviceID:
        return load_identity(self.home).device_id

    def daemon(self) -> ApiClient | None:
        """The running daemon's API client, or None when no daemon answers."""
        if not self._probed:
            self._probed = True
            load_config(self.home)  # a clear "run p2psync init" before anything else
            from .api.client import running_daemon

            self._client = running_daemon(self.home)
            if self._client is not None:
                click.get_current_context().call_on_close(self._client.close)
        return self._client

    def need_daemon(self) -> ApiClient:
        client = self.daemon()
        if client is None:
            raise DaemonNotRunningError(
                f"the p2psync daemon for {self.home} is not running (start it with `p2psync run`)"
            )
        return client


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn P2PSyncError into a one-line message and the error's exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except P2PSyncError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        return _handle_errors(super().invoke)(ctx)


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def _parse_device_id(text: str) -> DeviceID:
    return DeviceID.parse(text)


def _q(segment: str) -> str:
    """A URL path segment (folder IDs are restricted, but never trust that)."""
    return quote(segment, safe="")


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group(cls=_Group)
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
            validate_listen_url(url, f"--listen[{i}]")
        cfg = replace(cfg, listen=tuple(listen))
    if api:
        cfg = replace(cfg, api=validate_host_port(api, "--api"))
    if no_mdns:
        cfg = replace(cfg, discovery=replace(cfg.discovery, mdns=False))
    if not no_default_folder:
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
    click.echo("  p2psync folder share default OTHER-ID  # share the default folder with it")


def _write_api_key(home: Path) -> None:
    ensure_api_key(home)


@cli.command("id")
@json_option
@click.pass_obj
def show_id(obj: Context, as_json: bool) -> None:
    """Print this device's ID."""
    device_id = load_identity(obj.home).device_id
    _emit({"device_id": str(device_id)}, as_json, lambda: click.echo(str(device_id)))


@cli.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def run(obj: Context, verbose: bool) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM."""
    import trio

    from .app import run_daemon
    from .logsetup import setup_logging

    setup_logging(obj.home, logging.DEBUG if verbose else logging.INFO)
    if not (obj.home / "config.toml").exists():
        raise ConfigError(f"no config at {obj.home / 'config.toml'}; run `p2psync init` first")
    _write_api_key(obj.home)
    trio.run(run_daemon, obj.home)


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


# ---- peers -----------------------------------------------------------------------------


@cli.group()
def peer() -> None:
    """Manage trusted devices."""


@peer.command("add")
@click.argument("device_id")
@click.option("--name", default="", help="A name for the device.")
@click.option("--address", "addresses", multiple=True, help="tcp://HOST:PORT (default: dynamic).")
@click.option("--introducer", is_flag=True, help="Accept devices this one introduces.")
@click.pass_obj
def peer_add(
    obj: Context, device_id: str, name: str, addresses: tuple[str, ...], introducer: bool
) -> None:
    """Trust a device (by its ID) and optionally give its address."""
    did = _parse_device_id(device_id)
    cfg = obj.config()
    if did == obj.own_id():
        raise UsageError("that is this device's own ID")
    for i, a in enumerate(addresses):
        if a != "dynamic":
            validate_listen_url(a, f"--address[{i}]")
    client = obj.daemon()
    if client is not None:
        body = {
            "id": str(did),
            "name": name,
            "addresses": list(addresses),
            "introducer": introducer,
        }
        existed = bool(client.post("/api/devices", body)["updated"])
    else:
        new, existed = edits.add_device(
            cfg, obj.own_id(), str(did), name=name, addresses=addresses, introducer=introducer
        )
        obj.save(new)
        PendingStore(obj.home).remove_device(str(did))
    click.echo(f"{'Updated' if existed else 'Added'} device {did}")


@peer.command("list")
@json_option
@click.pass_obj
def peer_list(obj: Context, as_json: bool) -> None:
    """List trusted devices."""
    cfg = obj.config()
    data = [asdict(d) for d in cfg.devices]

    def human() -> None:
        if not cfg.devices:
            click.echo("No devices. Add one with: p2psync peer add DEVICE-ID")
        for d in cfg.devices:
            flags = " (paused)" if d.paused else ""
            click.echo(
                f"{d.id}  {safe(d.name) or '-'}  {', '.join(safe(a) for a in d.addresses)}{flags}"
            )

    _emit(data, as_json, human)


@peer.command("remove")
@click.argument("device_id")
@click.pass_obj
def peer_remove(obj: Context, device_id: str) -> None:
    """Stop trusting a device (and unshare every folder with it)."""
    did = _parse_device_id(device_id)
    cfg = obj.config()
    if cfg.device(did) is None:
        raise NotFoundError(f"device {did} is not configured")
    client = obj.daemon()
    if client is not None:
        client.delete(f"/api/devices/{did}")
    else:
        obj.save(edits.remove_device(cfg, str(did)))
    click.echo(f"Removed device {did}")


def _peer_pause(obj: Context, device_id: str, paused: bool) -> None:
    did = _parse_device_id(device_id)
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/devices/{did}/{'pause' if paused else 'resume'}")
    else:
        obj.save(edits.set_device_paused(obj.config(), str(did), paused))
    click.echo(f"{'Paused' if paused else 'Resumed'} device {did}")


@peer.command("pause")
@click.argument("device_id")
@click.pass_obj
def peer_pause(obj: Context, device_id: str) -> None:
    """Stop syncing with a device (it stays trusted)."""
    _peer_pause(obj, device_id, True)


@peer.command("resume")
@click.argument("device_id")
@click.pass_obj
def peer_resume(obj: Context, device_id: str) -> None:
    """Resume syncing with a paused device."""
    _peer_pause(obj, device_id, False)


@peer.command("pending")
@json_option
@click.pass_obj
def peer_pending(obj: Context, as_json: bool) -> None:
    """Devices that tried to connect but are not trusted yet."""
    entries = PendingStore(obj.home).devices()

    def human() -> None:
        if not entries:
            click.echo("No pending devices.")
        for e in entries:
            click.echo(f"{e.device_id}  {safe(e.name) or '-'}  from {safe(e.address)}")
            click.echo(f"    accept with: p2psync peer add {e.device_id}")

    _emit([asdict(e) for e in entries], as_json, human)


@peer.command("reject")
@click.argument("device_id")
@click.pass_obj
def peer_reject(obj: Context, device_id: str) -> None:
    """Forget a pending device (it is listed again if it connects again)."""
    did = str(_parse_device_id(device_id))
    store = PendingStore(obj.home)
    if not any(e.device_id == did for e in store.devices()):
        raise NotFoundError(f"device {did} is not pending (see `p2psync peer pending`)")
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/pending/devices/{did}/reject")
    else:
        store.remove_device(did)
    click.echo(f"Rejected device {did}")


@peer.command("discovered")
@json_option
@click.pass_obj
def peer_discovered(obj: Context, as_json: bool) -> None:
    """Unknown devices seen on the LAN (mDNS); needs the daemon."""
    data = obj.need_daemon().get("/api/discovered")

    def human() -> None:
        if not data["enabled"]:
            click.echo("LAN discovery (mDNS) is off.")
        elif not data["devices"]:
            click.echo("No unknown devices seen on the LAN.")
        for d in data["devices"]:
            where = ", ".join(safe(a) for a in d["addresses"])
            click.echo(f"{d['id']}  {where}  seen {d['seen_ago']:.0f}s ago")
            click.echo(f"    trust with: p2psync peer add {d['id']}")

    _emit(data, as_json, human)


# ---- folders ---------------------------------------------------------------------------


@cli.group()
def folder() -> None:
    """Manage shared folders."""


@folder.command("add")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--id", "folder_id", help="Folder ID (same on every device; default: from the name).")
@click.option("--label", default="", help="Human-readable label.")
@click.option("--type", "folder_type", type=click.Choice(FOLDER_TYPES), default="sendreceive")
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
    devices = [str(_parse_device_id(d)) for d in share]
    new = edits.add_folder(
        cfg, abs_path, folder_id=folder_id, label=label, folder_type=folder_type, share=devices
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
                "devices": devices,
            },
        )
    else:
        abs_path.mkdir(parents=True, exist_ok=True)
        obj.save(cfg.with_folder(new))
        PendingStore(obj.home).remove_folder(new.id)
    click.echo(f"Added folder {new.id!r} at {safe(str(abs_path))}")


@folder.command("share")
@click.argument("folder_id")
@click.argument("device_id")
@click.pass_obj
def folder_share(obj: Context, folder_id: str, device_id: str) -> None:
    """Share an existing folder with a trusted device."""
    did = _parse_device_id(device_id)
    cfg = obj.config()
    new, already = edits.share_folder(cfg, folder_id, str(did))
    if already:
        click.echo(f"Folder {folder_id!r} is already shared with {did}")
        return
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/folders/{_q(folder_id)}/share", {"device": str(did)})
    else:
        obj.save(new)
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
                dev = cfg.device(DeviceID.parse(d))
                click.echo(f"    shared with {d} {safe(dev.name) if dev else ''}")

    _emit([asdict(f) for f in cfg.folders], as_json, human)


@folder.command("remove")
@click.argument("folder_id")
@click.pass_obj
def folder_remove(obj: Context, folder_id: str) -> None:
    """Stop synchronising a folder (its files stay on disk)."""
    new = edits.remove_folder(obj.config(), folder_id)
    client = obj.daemon()
    if client is not None:
        client.delete(f"/api/folders/{_q(folder_id)}")
    else:
        obj.save(new)
    click.echo(f"Removed folder {folder_id!r} (files left in place)")


def _folder_pause(obj: Context, folder_id: str, paused: bool) -> None:
    new = edits.set_folder_paused(obj.config(), folder_id, paused)
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/folders/{_q(folder_id)}/{'pause' if paused else 'resume'}")
    else:
        obj.save(new)
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
    entries = PendingStore(obj.home).folders()

    def human() -> None:
        if not entries:
            click.echo("No pending folders.")
        for e in entries:
            click.echo(f"{safe(e.folder_id)}  {safe(e.label)}  offered by {e.device_id}")
            click.echo(f"    accept with: p2psync folder accept {safe(e.folder_id)} [PATH]")

    _emit([asdict(e) for e in entries], as_json, human)


@folder.command("accept")
@click.argument("folder_id")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def folder_accept(obj: Context, folder_id: str, path: Path | None) -> None:
    """Accept a pending folder, sharing it back with the devices that offered it."""
    cfg = obj.config()
    target = path.expanduser().absolute() if path else edits.default_accept_path(folder_id)
    offers = PendingStore(obj.home).folders()
    new = edits.accept_folder(cfg, offers, folder_id, target)
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/pending/folders/{_q(folder_id)}/accept", {"path": str(target)})
    else:
        target.mkdir(parents=True, exist_ok=True)
        obj.save(cfg.with_folder(new))
        PendingStore(obj.home).remove_folder(folder_id)
    click.echo(f"Accepted folder {folder_id!r} at {safe(str(target))}")


@folder.command("reject")
@click.argument("folder_id")
@click.pass_obj
def folder_reject(obj: Context, folder_id: str) -> None:
    """Forget a pending folder offer (it is listed again if offered again)."""
    store = PendingStore(obj.home)
    if not any(e.folder_id == folder_id for e in store.folders()):
        raise NotFoundError(f"no pending folder {folder_id!r} (see `p2psync folder pending`)")
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/pending/folders/{_q(folder_id)}/reject")
    else:
        store.remove_folder(folder_id)
    click.echo(f"Rejected folder {safe(folder_id)!r}")


def _folder_action(obj: Context, folder_id: str, action: str) -> dict[str, Any]:
    if obj.config().folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    return obj.need_daemon().post(f"/api/folders/{_q(folder_id)}/{action}")


@folder.command("scan")
@click.argument("folder_id")
@click.argument("paths", nargs=-1)
@click.pass_obj
def folder_scan(obj: Context, folder_id: str, paths: tuple[str, ...]) -> None:
    """Scan a folder now (or only the given folder-relative paths)."""
    _scan(obj, folder_id, list(paths))


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


# ---- scan / status / events -------------------------------------------------------------


def _scan(obj: Context, folder_id: str | None, paths: list[str]) -> None:
    client = obj.need_daemon()
    ids = [folder_id] if folder_id else [f.id for f in obj.config().folders]
    if folder_id and obj.config().folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    for fid in ids:
        client.post(f"/api/folders/{_q(fid)}/scan", {"paths": paths} if paths else {})
        click.echo(
            f"Scanning {fid!r}{' (' + ', '.join(safe(p) for p in paths) + ')' if paths else ''}"
        )
    if not ids:
        click.echo("No folders to scan.")


@cli.command("scan")
@click.argument("folder_id", required=False)
@click.pass_obj
def scan_cmd(obj: Context, folder_id: str | None) -> None:
    """Scan one folder, or every folder, now."""
    _scan(obj, folder_id, [])


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
        _emit(data, as_json, lambda: _console().print(status_renderable(data)))
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
    data = {fid: client.get(f"/api/folders/{_q(fid)}/conflicts")["conflicts"] for fid in ids}

    def human() -> None:
        total = sum(len(v) for v in data.values())
        if not total:
            click.echo("No conflicts.")
        for fid, items in data.items():
            for c in items:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["modified"]))
                click.echo(f"{safe(fid)}: {safe(c['name'])}  ({c['size']} bytes, {when})")

    _emit(data, as_json, human)


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
            f"/api/folders/{_q(folder_id)}/versions", params={"path": path} if path else None
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

    _emit(items, as_json, human)


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
            f"/api/folders/{_q(folder_id)}/versions/restore", {"path": path, "at": at}
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

    _emit(data, as_json, human)


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
