"""A byte-counting TCP proxy on loopback: the wire-byte meter between two daemons.

Each accepted connection gets two pump threads (one per direction). Bytes move with
``os.splice`` through a pipe (zero-copy, the GIL released), falling back to
recv/sendall where splice is unavailable. Only 127.0.0.1 is ever bound or dialled.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from dataclasses import dataclass

_CHUNK = 1 << 20
_LOOPBACK = "127.0.0.1"


@dataclass
class _Counter:
    value: int = 0


class CountingProxy:
    """Forward 127.0.0.1:<port> to ``target_port`` on 127.0.0.1, counting bytes both ways.

    ``up`` counts bytes from the dialling side to the target, ``down`` the replies.
    Use as a context manager or call :meth:`start` / :meth:`close`.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((_LOOPBACK, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._up: list[_Counter] = []
        self._down: list[_Counter] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self.connections = 0

    # ---- counters ------------------------------------------------------------------
    @property
    def up(self) -> int:
        with self._lock:
            return sum(c.value for c in self._up)

    @property
    def down(self) -> int:
        with self._lock:
            return sum(c.value for c in self._down)

    @property
    def total(self) -> int:
        return self.up + self.down

    # ---- lifecycle -----------------------------------------------------------------
    def start(self) -> CountingProxy:
        self._spawn(self._accept_loop)
        return self

    def close(self) -> None:
        """Stop accepting, cut every connection and join the threads."""
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        for s in [self._listener, *sockets]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -----------------------------------------------------------------
    def _spawn(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=fn, args=args, daemon=True, name="bench-proxy")
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection((_LOOPBACK, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            up, down = _Counter(), _Counter()
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                self._up.append(up)
                self._down.append(down)
                self.connections += 1
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(_pump, client, upstream, up)
            self._spawn(_pump, upstream, client, down)


def _pump(src: socket.socket, dst: socket.socket, counter: _Counter) -> None:
    """Copy ``src`` to ``dst`` until EOF or error; then half-close ``dst``."""
    try:
        if hasattr(os, "splice"):
            _pump_splice(src, dst, counter)
        else:  # pragma: no cover - non-Linux
            _pump_copy(src, dst, counter)
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.EBADF, errno.ENOTCONN, None):
            raise
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _pump_splice(src: socket.socket, dst: socket.socket, counter: _Counter) -> None:
    read_end, write_end = os.pipe()
    try:
        sfd, dfd = src.fileno(), dst.fileno()
        while True:
            n = os.splice(sfd, write_end, _CHUNK)
            if n == 0:
                return
            counter.value += n
            left = n
            while left:
                left -= os.splice(read_end, dfd, left)
    finally:
        os.close(read_end)
        os.close(write_end)


def _pump_copy(
    src: socket.socket, dst: socket.socket, counter: _Counter
) -> None:  # pragma: no cover
    while True:
        data = src.recv(_CHUNK)
        if not data:
            return
        counter.value += len(data)
        dst.sendall(data)
