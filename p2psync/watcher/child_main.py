"""The watcher child process: ``python -m p2psync.watcher.child_main ROOT``.

Why a process: watchdog parses every inotify event in Python threads. In the daemon's
process those threads compete for the GIL with the puller, so each file the puller creates
(six or so events) slowed the next file operation down: 1,000 small files took 0.3-0.6 s
longer to write in a watched folder than in an unwatched one. Here they cost a core of
their own.

Protocol, one JSON object per line on stdout (``ensure_ascii``, so names with lone
surrogates survive):

- ``{"ready": true}`` once the OS watches are in place;
- ``{"error": {"errno": N, "message": "..."}}`` if they cannot be, then exit 1;
- ``{"items": [[name, ...] | null, ...]}``: the names each event touched, ``null`` meaning
  "rescan everything" (the root went away, or more events than ``MAX_PENDING`` piled up).

The child stops when its stdin reaches end of file (the daemon closed it, or died).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from p2psync.watcher.event_names import EVENT_FILTER, BridgeItem, names_for_event

FLUSH_INTERVAL = 0.005  # seconds to gather a burst of events into one line
MAX_PENDING = 50_000


class _Collector(FileSystemEventHandler):
    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.pending: list[BridgeItem] = []
        self.wake = threading.Event()

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            item = names_for_event(self.root, event)
        except Exception:
            item = None
        if item == ():
            return
        with self.lock:
            if len(self.pending) >= MAX_PENDING:
                self.pending = [None]
            else:
                self.pending.append(item)
        self.wake.set()

    def take(self) -> list[BridgeItem]:
        with self.lock:
            items, self.pending = self.pending, []
        return items


def _write(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _wait_for_eof(stop: threading.Event, wake: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        stop.set()
        wake.set()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    root = argv[1]
    collector = _Collector(root)
    observer = Observer()
    try:
        observer.schedule(collector, root, recursive=True, event_filter=EVENT_FILTER)
        observer.start()
    except OSError as exc:
        _write({"error": {"errno": exc.errno or 0, "message": exc.strerror or str(exc)}})
        return 1
    stop = threading.Event()
    threading.Thread(
        target=_wait_for_eof, args=(stop, collector.wake), name="stdin", daemon=True
    ).start()
    try:
        _write({"ready": True})
        while not stop.is_set():
            collector.wake.wait()
            collector.wake.clear()
            stop.wait(FLUSH_INTERVAL)
            items = collector.take()
            if items:
                _write({"items": items})
    except BrokenPipeError:
        pass  # the daemon is gone
    finally:
        observer.stop()
        observer.join(5)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    os._exit(code)  # do not wait for watchdog's threads a second time
