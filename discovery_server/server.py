"""Run the discovery app on hypercorn's HTTP/1.1 connection handler, under our accept loop.

hypercorn's own ``serve`` accepts without limit and logs a traceback every 0.1 s while
accept(2) fails with EMFILE; here ``p2psync.api.accept.serve_capped`` accepts instead
(caps in total and per address, quiet on exhausted resources) and hands each connection
to hypercorn's ``TCPServer``. Timeouts: a connection must deliver a request head within
``header_timeout`` (hypercorn's idle timer, which runs until a head is complete; also
the TLS handshake's limit), a body within ``body_timeout`` in total (``app``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from p2psync.api.accept import (
    ConnectionCaps,
    ConnectionGate,
    serve_capped,
    total_cap_below_fd_limit,
)

from .asgi import DiscoveryService, ServerSettings, create_app
from .client_cert_tls import certificate_device_id, make_server_context, serve_tls_connection
from .logsetup import ServerLogger
from .stores import Store

log = logging.getLogger(__name__)

READ_BACKSTOP = 60  # seconds: no read on a connection may wait longer


async def serve_discovery(
    settings: ServerSettings,
    store: Store,
    *,
    listen: str = "127.0.0.1:22027",
    certfile: str | None = None,
    keyfile: str | None = None,
    clock: Callable[[], float] = time.time,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    task_status: trio.TaskStatus[tuple[list[str], DiscoveryService]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled or ``shutdown_trigger`` returns.

    Reports (bound URLs, service) once listening; with ``settings.url`` None the public
    URL (used in signature checks) becomes the first bound URL.
    """
    app, service = create_app(settings, store, clock=clock)
    config = _hypercorn_config(settings, listen, certfile, keyfile, graceful_timeout)
    listeners, binds = _open_listeners(config)
    total = total_cap_below_fd_limit(settings.max_connections)
    gate = ConnectionGate(ConnectionCaps(total, min(total, settings.max_per_address)))
    service.gate = gate
    context = WorkerContext(None)
    asgi = wrap_app(app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]  # as before
    handler = partial(TCPServer, asgi, config, context)

    def plain(stream: Any) -> Awaitable[None]:
        return handler(ConnectionState({}), stream)

    connect: Callable[[Any], Awaitable[None]] = plain
    if certfile is not None and keyfile is not None:  # TLS here: client certificates (v3)
        tls = make_server_context(certfile, keyfile)
        connect = partial(serve_tls_connection, handler, tls, config.ssl_handshake_timeout)
        service.certificate_id = certificate_device_id(certfile)
    async with trio.open_nursery() as connections:
        try:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    partial(
                        serve_capped,
                        connect,
                        listeners,
                        gate,
                        handler_nursery=connections,
                        logger=log,
                    )
                )
                _announce(service, binds, gate)
                task_status.started((binds, service))
                if shutdown_trigger is None:
                    await trio.sleep_forever()
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
        finally:
            # idle keep-alive connections close now, the rest get graceful_timeout
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + graceful_timeout


def _hypercorn_config(
    settings: ServerSettings,
    listen: str,
    certfile: str | None,
    keyfile: str | None,
    graceful_timeout: float,
) -> Config:
    config = Config()
    config.bind = [listen]
    config.certfile = certfile
    config.keyfile = keyfile
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.logger_class = ServerLogger  # each line once; one DEBUG line per request
    config.include_server_header = False
    config.keep_alive_timeout = settings.header_timeout  # also idle time between requests
    config.ssl_handshake_timeout = settings.header_timeout
    # a backstop for silence the other timers do not cover (HTTP/2 streams); long enough
    # not to cut a request whose answer waits on a slow store
    config.read_timeout = math.ceil(max(READ_BACKSTOP, settings.header_timeout))
    return config


def _open_listeners(config: Config) -> tuple[list[trio.abc.Listener[Any]], list[str]]:
    """Bound and listening sockets for ``config.bind`` as trio listeners, with URLs
    (TLS on the https ones is the connection handler's: serve_tls_connection)."""
    sockets = config.create_sockets()
    listeners: list[trio.abc.Listener[Any]] = []
    binds: list[str] = []
    for scheme, group in (("https", sockets.secure_sockets), ("http", sockets.insecure_sockets)):
        for sock in group:
            sock.listen(config.backlog)
            listener: trio.abc.Listener[Any] = trio.SocketListener(
                trio.socket.from_stdlib_socket(sock)
            )
            listeners.append(listener)
            binds.append(f"{scheme}://{repr_socket_addr(sock.family, sock.getsockname())}")
    return listeners, binds


def _announce(service: DiscoveryService, binds: list[str], gate: ConnectionGate) -> None:
    if service.url is None:
        service.url = binds[0]
        if any(h in binds[0] for h in ("//0.0.0.0:", "//[::]:")):
            log.warning("public URL derived as %s, which clients cannot use: set --url", binds[0])
    caps = gate.caps
    log.info(
        "discovery server on %s, public URL %s (at most %d connections, %s per address)",
        ", ".join(binds),
        service.url,
        caps.total,
        caps.per_address or "no cap",
    )
    if service.certificate_id is not None:
        log.info(
            "Syncthing devices use %s/v2/?id=%s (announce and lookup)",
            service.url.rstrip("/"),
            service.certificate_id,
        )
