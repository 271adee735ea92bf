"""`p2psync init`, `id`, `run`, `log`, `demo`: this device's home and its daemon."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import click

from ..api.auth import ensure_api_key
from ..config import (
    DEFAULT_API_PORT,
    Config,
    FolderConfig,
    argument_errors,
    folder_path_problem,
    save_config,
    validate_host_port,
    validate_listen_url,
)
from ..errors import ConfigError, NotFoundError, UsageError
from ..identity import load_identity, load_or_create_identity
from ..logsetup import LOG_FILE
from ..textsafe import safe
from .support import Context, emit, json_option

# ---- init / id / run / log ---------------------------------------------------------------


@click.command()
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


@click.command("id")
@json_option
@click.pass_obj
def show_id(obj: Context, as_json: bool) -> None:
    """Print this device's ID."""
    device_id = load_identity(obj.home).device_id
    emit({"device_id": str(device_id)}, as_json, lambda: click.echo(str(device_id)))


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def run(obj: Context, verbose: bool) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM."""
    import trio

    from ..app import run_daemon
    from ..homelock import lock_home
    from ..logsetup import setup_logging

    if not (obj.home / "config.toml").exists():
        raise ConfigError(f"no config at {obj.home / 'config.toml'}; run `p2psync init` first")
    # One daemon per home: locked before the log, keys or index are opened.
    with lock_home(obj.home) as home_lock:
        setup_logging(obj.home, logging.DEBUG if verbose else logging.INFO)
        _write_api_key(obj.home)
        trio.run(run_daemon, obj.home, home_lock)


@click.command("log")
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


# ---- demo ---------------------------------------------------------------------------------


@click.command()
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
    from ..api.demo import run_demo

    run_demo(click.echo, timeout=timeout, keep=keep)
