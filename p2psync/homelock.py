"""One daemon per node home: an exclusive ``flock`` on ``<home>/daemon.lock``.

Taken before anything else in the home is opened (log, identity, index), so a second
``p2psync run`` on a running home stops with a one-line error and touches nothing: two
daemons on one home would share the SQLite index (the second one's exit removed the
first one's WAL files), the API address and the folders. The kernel drops the lock when
the process dies, so a crashed daemon never leaves a stale lock behind; the file keeps
the holder's PID only to name it in the error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import DaemonRunningError

LOCK_FILE = "daemon.lock"


class HomeLock:
    """An exclusive lock on a node home, held until ``release`` (or process exit)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_home(home: Path) -> HomeLock:
    """Lock ``home`` for this process, or raise DaemonRunningError naming the holder."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f" (PID {holder})" if holder else ""
        raise DaemonRunningError(
            f"a p2psync daemon is already running on {home}{who}; "
            "stop it first, or use another --home"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return HomeLock(path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
