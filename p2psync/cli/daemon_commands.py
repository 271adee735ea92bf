"""`p2psync init`, `id`, `run`, `log`, `demo`: this device's home and its daemon."""

from __future__ import annotations

import click

from ..config import DEFAULT_API_PORT
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
    device_id = obj.offline.init(
        name=name,
        listen=listen,
        api=api,
        mdns=not no_mdns,
        default_folder_path=None if no_default_folder else default_folder_path,
    )
    click.echo(f"Initialised p2psync in {home}")
    click.echo(f"Device ID: {device_id}")
    click.echo("")
    click.echo("Next steps:")
    click.echo("  p2psync run                            # start the daemon")
    click.echo("  p2psync peer add OTHER-DEVICE-ID       # trust another device (on both sides)")
    if not no_default_folder:
        click.echo("  p2psync folder share default OTHER-ID  # share the default folder with it;")
        click.echo("  p2psync folder accept default          # ... and accept it on the other side")
    click.echo("  p2psync status                         # see folders, devices and progress")


@click.command("id")
@json_option
@click.pass_obj
def show_id(obj: Context, as_json: bool) -> None:
    """Print this device's ID."""
    device_id = obj.offline.own_id()
    emit({"device_id": str(device_id)}, as_json, lambda: click.echo(str(device_id)))


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_obj
def run(obj: Context, verbose: bool) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM."""
    obj.offline.run_daemon(verbose=verbose)


@click.command("log")
@click.option(
    "--tail", "tail", type=click.IntRange(min=0), default=None, help="Also print the last N lines."
)
@click.pass_obj
def show_log(obj: Context, tail: int | None) -> None:
    """Print where the daemon's log file is (and optionally its last lines)."""
    click.echo(str(obj.offline.log_path))
    if tail:
        for line in obj.offline.log_lines()[-tail:]:
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
