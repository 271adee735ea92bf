"""The discovery server's logging: one handler (the root's), requests only at DEBUG
(``discovery_server.access``, one line per request answered; see ``http1``)."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "discovery_server.access"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
