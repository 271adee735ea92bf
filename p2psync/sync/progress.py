"""Byte progress of a folder's pulls: which files are being built, how many of their bytes
are in place, and from which devices they came.

A file's bytes count as soon as its blocks are in the temp file, whether copied from a
local file (or an earlier attempt) or fetched from a peer, so a 100 MB file moves from
0 to 100 % as it arrives instead of jumping at the end. Blocks land from worker threads
and fetch tasks, so every method takes the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class FileProgress:
    name: str
    total: int
    done: int = 0
    local: int = 0  # of ``done``: bytes found on this device
    sources: dict[bytes, int] = field(default_factory=dict)  # device -> bytes fetched


class PullProgress:
    """The files a folder's puller is building, in bytes.

    ``pulled`` counts every byte put in place since the start (the basis of the folder's
    transfer rate and ETA). A finished file stays counted as ``finished`` until its
    record is in the index (``flushed``): the index's need then drops by the same bytes,
    so the folder's completion never dips between the two."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, FileProgress] = {}
        self._finished: dict[str, int] = {}
        self.pulled = 0

    def begin(self, name: str, total: int) -> None:
        with self._lock:
            self._files[name] = FileProgress(name, total)

    def advance(self, name: str, size: int, source: bytes | None = None) -> None:
        """``size`` more bytes of ``name`` are in place, fetched from ``source`` (a device)
        or found locally (None)."""
        with self._lock:
            self.pulled += size
            fp = self._files.get(name)
            if fp is None:
                return
            fp.done += size
            if source is None:
                fp.local += size
            else:
                fp.sources[source] = fp.sources.get(source, 0) + size

    def end(self, name: str, *, applied: bool) -> None:
        """``name`` is no longer being built; if ``applied``, it is in place but its
        record may not be in the index yet."""
        with self._lock:
            fp = self._files.pop(name, None)
            if fp is not None and applied:
                self._finished[name] = fp.total

    def finished(self) -> list[str]:
        """The files finished and not yet known to be recorded (their records are already
        waiting to be flushed: a file ends only after its record is queued)."""
        with self._lock:
            return list(self._finished)

    def flushed(self, names: list[str]) -> None:
        """The records of ``names`` (from ``finished``, taken before a flush) are in the
        index now."""
        with self._lock:
            for name in names:
                self._finished.pop(name, None)

    def files(self) -> list[FileProgress]:
        """A copy of the files being built, largest first."""
        with self._lock:
            copies = [
                FileProgress(f.name, f.total, f.done, f.local, dict(f.sources))
                for f in self._files.values()
            ]
        return sorted(copies, key=lambda f: (-f.total, f.name))

    def bytes_in_place(self) -> int:
        """Bytes of needed files already in place: partly built files and finished files
        not yet recorded."""
        with self._lock:
            return sum(f.done for f in self._files.values()) + sum(self._finished.values())
