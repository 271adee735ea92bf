"""``python -m discovery_server`` — same as the ``p2psync-discovery`` command."""

from .cli import main

main()
