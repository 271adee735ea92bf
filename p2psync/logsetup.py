"""Logging: stderr plus a rotating file in the node home."""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import signal
import sys
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


def dump_stacks_on_sigusr1() -> bool:
    """``kill -USR1 <pid>`` writes every thread's stack to the daemon's stderr.

    The interpreter writes it itself, so it answers while the event loop is stuck, which
    is what a hang needs. stderr rather than a file in the home: a start refused (a newer
    config or index) must leave the home as it was. False when there is no stderr."""
    stream = sys.stderr
    if stream is None or not hasattr(signal, "SIGUSR1"):
        return False
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)
    return True
