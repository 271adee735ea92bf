"""Which config changes the running daemon applies live and which wait for a restart.

Folders, devices, sharing, rate limits, names and every folder setting apply within a
second of the change (``Node.apply_config``). The ones below are bound when the daemon
starts; ``restart_needed`` names those that differ from what the daemon started with, so
the log, the API answer and ``config set`` can say so instead of a bare "applying".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import Config

# (key as in config.toml, how to read it)
STARTUP_ONLY: tuple[tuple[str, Callable[[Config], Any]], ...] = (
    ("listen", lambda c: c.listen),
    ("api", lambda c: c.api),
    ("discovery.mdns", lambda c: c.discovery.mdns),
    ("discovery.mdns_interfaces", lambda c: c.discovery.mdns_interfaces),
    ("discovery.global_servers", lambda c: c.discovery.global_servers),
)
# ``listen`` and ``discovery`` are applied live (services.apply_network_changes), which
# moves them into ``Node.running_config``; they are only named here when that failed
# (e.g. the new address is in use).


def restart_needed(running: Config, new: Config) -> list[str]:
    """The keys of ``new`` that differ from the ``running`` daemon's and only take effect
    after a restart."""
    return [key for key, read in STARTUP_ONLY if read(running) != read(new)]
