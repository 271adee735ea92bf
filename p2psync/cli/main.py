"""The p2psync command line: the root group and where each command group is attached.

Control commands talk to the running daemon only through its API client (so config
changes apply without a restart); when no daemon runs, config-changing commands edit the
node home through the one service layer, ``offline_service``, and commands that need live
state fail with DaemonNotRunningError (exit 4).
Every command lives in the module of its group (``*_commands.py``); ``support`` is the
one place errors become messages and exit codes.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__
from ..api.auth import API_KEY_FILE
from ..config import default_home
from .config_commands import config_group, folder_unshare, peer_remove_address
from .daemon_commands import demo, init, run, show_id, show_log
from .folder_commands import folder, scan_cmd
from .history_commands import conflicts, history, versions
from .ignore_commands import ignore
from .link_commands import link
from .peer_commands import peer
from .relay_commands import relay
from .selection_commands import folder_select, folder_selection, folder_unselect
from .status_commands import events, folder_completion, status
from .support import Context, ErrorGroup
from .web_commands import open_web, web_password

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
folder.add_command(folder_select)
folder.add_command(folder_unselect)
folder.add_command(folder_selection)
peer.add_command(peer_remove_address)
cli.add_command(config_group)
cli.add_command(open_web)
cli.add_command(web_password)
cli.add_command(relay)
cli.add_command(link)
cli.add_command(history)
cli.add_command(init)
cli.add_command(show_id)
cli.add_command(run)
cli.add_command(show_log)
cli.add_command(demo)
cli.add_command(scan_cmd)
cli.add_command(status)
cli.add_command(events)
cli.add_command(conflicts)
cli.add_command(versions)
cli.add_command(ignore)


def main() -> None:
    cli(prog_name="p2psync")


if __name__ == "__main__":
    main()
