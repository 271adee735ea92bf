"""Logging: stderr plus a rotating file in the node home."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FILE = "p2psync.log"
QUIET_BELOW_DEBUG = ("httpx", "httpcore", "hpack")


def setup_logging(home: Path, level: int = logging.INFO) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    stderr = logging.StreamHandler()
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    path = home / LOG_FILE
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=10 * 1024 * 1024, backupCount=3
    )
    file_handler.setFormatter(fmt)
    root.addHandler(file_handler)
    # httpx logs every request (each discovery announce and lookup) at INFO: only with -v
    for chatty in QUIET_BELOW_DEBUG:
        logging.getLogger(chatty).setLevel(
            logging.DEBUG if level <= logging.DEBUG else logging.WARNING
        )
    return path
