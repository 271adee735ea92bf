"""One daemon per folder path: an exclusive ``flock`` on the folder's marker.

Two node homes configured with the same folder path would both scan, pull into and
version the same tree, each taking the other's writes for local changes. The daemon
running a folder holds a lock on its marker (``.p2psync``, a directory or a file), so
another daemon's folder at that path stays in error until the first one lets go. The
kernel drops the lock with the process: nothing stale is left behind, and a folder
handed to a new home (a re-created node) needs no clean-up. A marker replaced while
the folder runs is locked again in its new form.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..fs.internal import MARKER


class FolderLock:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None

    def ensure(self) -> str:
        """Hold the lock on the marker as it is now: "" if held (or there is no marker
        to lock yet), else why not. Blocking: call from a worker thread."""
        path = self.root / MARKER
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.release()
            return ""
        key = (st.st_dev, st.st_ino)
        if self._fd is not None and key == self._key:
            return ""
        self.release()
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return (
                f"folder path {self.root} is in use by another p2psync daemon (another node "
                "home); a folder path belongs to one home only"
            )
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._key = fd, key
        return ""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._key = None
