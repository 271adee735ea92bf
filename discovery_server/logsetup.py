"""The discovery server's logging: one handler (ours), each line once, requests at DEBUG.

hypercorn, left to itself, gives its "hypercorn.error" logger a second stderr handler
(so every line it logs printed twice: once in its format, once in ours) and logs each
request at INFO when an access log is on. ``ServerLogger`` routes both through the root
logger: server messages at their level, one access line per request at DEBUG.
"""

from __future__ import annotations

import logging
from typing import Any

from hypercorn.config import Config
from hypercorn.logging import Logger

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "discovery_server.access"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)


class ServerLogger(Logger):
    """hypercorn's logger without handlers of its own (``Config.logger_class``)."""

    def __init__(self, config: Config) -> None:  # no super(): it would add handlers
        self.access_log_format = config.access_log_format
        self.access_logger = logging.getLogger(ACCESS_LOGGER)
        self.error_logger = logging.getLogger("hypercorn.error")

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        access = logging.getLogger(ACCESS_LOGGER)
        if access.isEnabledFor(logging.DEBUG):
            access.debug(self.access_log_format, self.atoms(request, response, request_time))
