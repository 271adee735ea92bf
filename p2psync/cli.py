"""The p2psync command line: the one place errors become messages and exit codes."""

from __future__ import annotations

import json
import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import wraps
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import (
    DEFAULT_API_PORT,
    FOLDER_TYPES,
    Config,
    DeviceConfig,
    FolderConfig,
    load_config,
    save_config,
    validate_folder_id,
    validate_host_port,
    validate_listen_url,
    default_home,
)
from .errors import ConfigError, NotFoundError, P2PSyncError, UsageError
from .identity import DeviceID, load_identity, load_or_create_identity
from .pending import PendingStore
from .textsafe import safe

API_KEY_FILE = "api.key"


class Context:
    def __init__(self, home: Path) -> None:
        self.home = home

    def config(self) -> Config:
        return load_config(self.home)

    def save(self, cfg: Config) -> None:
        save_config(cfg, self.home)


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


# ---- init / id / run -------------------------------------------------------------------


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
        cfg = cfg.with_folder(FolderConfig(id="default", label="Default Folder", path=default_folder_path))
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
    import os

    path = home / API_KEY_FILE
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")


@cli.command("id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
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
def peer_add(obj: Context, device_id: str, name: str, addresses: tuple[str, ...], introducer: bool) -> None:
    """Trust a device (by its ID) and optionally give its address."""
    did = _parse_device_id(device_id)
    cfg = obj.config()
    if did == load_identity(obj.home).device_id:
        raise UsageError("that is this device's own ID")
    for i, a in enumerate(addresses):
        if a != "dynamic":
            validate_listen_url(a, f"--address[{i}]")
    existing = cfg.device(did)
    device = DeviceConfig(
        id=str(did),
        name=name or (existing.name if existing else ""),
        addresses=tuple(addresses) or (existing.addresses if existing else ("dynamic",)),
        introducer=introducer,
    )
    obj.save(cfg.with_device(device))
    PendingStore(obj.home).remove_device(str(did))
    click.echo(f"{'Updated' if existing else 'Added'} device {did}")


@peer.command("list")
@click.option("--json", "as_json", is_flag=True)
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
            click.echo(f"{d.id}  {safe(d.name) or '-'}  {', '.join(d.addresses)}{flags}")

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
    obj.save(cfg.without_device(did))
    click.echo(f"Removed device {did}")


@peer.command("pending")
@click.option("--json", "as_json", is_flag=True)
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
    obj: Context, path: Path, folder_id: str | None, label: str, folder_type: str, share: tuple[str, ...]
) -> None:
    """Add a folder to synchronise (created if missing)."""
    cfg = obj.config()
    abs_path = path.expanduser().absolute()
    folder_id = validate_folder_id(folder_id or _folder_id_from(abs_path), "--id")
    for f in cfg.folders:
        if f.resolved_path.absolute() == abs_path:
            raise UsageError(f"{abs_path} is already shared as folder {f.id!r}")
    if cfg.folder(folder_id) is not None:
        raise UsageError(f"folder {folder_id!r} already exists")
    devices = []
    for d in share:
        did = _parse_device_id(d)
        if cfg.device(did) is None:
            raise NotFoundError(f"device {did} is not configured; run `p2psync peer add {did}` first")
        devices.append(str(did))
    abs_path.mkdir(parents=True, exist_ok=True)
    new = FolderConfig(
        id=folder_id, path=str(abs_path), label=label or abs_path.name, type=folder_type, devices=tuple(devices)
    )
    obj.save(cfg.with_folder(new))
    PendingStore(obj.home).remove_folder(folder_id)
    click.echo(f"Added folder {folder_id!r} at {abs_path}")


def _folder_id_from(path: Path) -> str:
    import re

    base = re.sub(r"[^A-Za-z0-9._-]", "-", path.name).strip("-._") or "folder"
    return base[:64]


@folder.command("share")
@click.argument("folder_id")
@click.argument("device_id")
@click.pass_obj
def folder_share(obj: Context, folder_id: str, device_id: str) -> None:
    """Share an existing folder with a trusted device."""
    cfg = obj.config()
    f = cfg.folder(folder_id)
    if f is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    did = _parse_device_id(device_id)
    if cfg.device(did) is None:
        raise NotFoundError(f"device {did} is not configured; run `p2psync peer add {did}` first")
    if str(did) in f.devices:
        click.echo(f"Folder {folder_id!r} is already shared with {did}")
        return
    obj.save(cfg.with_folder(replace(f, devices=f.devices + (str(did),))))
    click.echo(f"Shared folder {folder_id!r} with {did}")


@folder.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def folder_list(obj: Context, as_json: bool) -> None:
    """List folders."""
    cfg = obj.config()

    def human() -> None:
        if not cfg.folders:
            click.echo("No folders. Add one with: p2psync folder add PATH")
        for f in cfg.folders:
            click.echo(f"{f.id}  {safe(f.label)}  {safe(f.path)}  [{f.type}]{' (paused)' if f.paused else ''}")
            for d in f.devices:
                dev = cfg.device(DeviceID.parse(d))
                click.echo(f"    shared with {d} {safe(dev.name) if dev else ''}")

    _emit([asdict(f) for f in cfg.folders], as_json, human)


@folder.command("remove")
@click.argument("folder_id")
@click.pass_obj
def folder_remove(obj: Context, folder_id: str) -> None:
    """Stop synchronising a folder (its files stay on disk)."""
    cfg = obj.config()
    if cfg.folder(folder_id) is None:
        raise NotFoundError(f"folder {folder_id!r} does not exist")
    obj.save(cfg.without_folder(folder_id))
    click.echo(f"Removed folder {folder_id!r} (files left in place)")


@folder.command("pending")
@click.option("--json", "as_json", is_flag=True)
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
    validate_folder_id(folder_id)
    offers = [e for e in PendingStore(obj.home).folders() if e.folder_id == folder_id]
    if not offers:
        raise NotFoundError(f"no pending folder {folder_id!r} (see `p2psync folder pending`)")
    if cfg.folder(folder_id) is not None:
        raise UsageError(f"folder {folder_id!r} already exists")
    target = (path or Path("~/Sync") / folder_id).expanduser().absolute()
    target.mkdir(parents=True, exist_ok=True)
    devices = tuple(dict.fromkeys(e.device_id for e in offers if cfg.device(DeviceID.parse(e.device_id))))
    new = FolderConfig(id=folder_id, path=str(target), label=offers[0].label or folder_id, devices=devices)
    obj.save(cfg.with_folder(new))
    PendingStore(obj.home).remove_folder(folder_id)
    click.echo(f"Accepted folder {folder_id!r} at {target}")


def main() -> None:
    cli(prog_name="p2psync")


if __name__ == "__main__":
    main()
