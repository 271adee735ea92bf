"""Builds every service of a node and runs them in one nursery; nothing else."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import trio

from . import __version__
from .config import load_config
from .identity import load_or_create_identity

log = logging.getLogger("p2psync.app")


async def serve_node(home: Path, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one node until cancelled."""
    identity, created = load_or_create_identity(home)
    config = load_config(home)
    if created:
        log.info("generated a new identity")
    log.info("p2psync %s starting: device %s (%s), home %s", __version__, identity.device_id, config.name, home)
    async with trio.open_nursery() as nursery:
        del nursery  # services are added here as they are built
        log.info("ready: listening on %s; API on %s", ", ".join(config.listen), config.api)
        task_status.started()
        await trio.sleep_forever()


async def run_daemon(home: Path) -> None:
    """The daemon's main: run the node until SIGINT or SIGTERM, then shut down cleanly."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_node, home)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("stopped")
