"""Serve the discovery API on ``http1``'s HTTP/1.1 connections, under our accept loop.

``p2psync.api.accept.serve_capped`` accepts (caps in total and per address, quiet on
exhausted resources: no traceback storm while accept(2) fails with EMFILE) and gives
each connection a task: plain HTTP, or TLS first (``client_cert_tls``: a Syncthing
device's certificate for v3 announcements). Timeouts: a request head within
``header_timeout`` (also the TLS handshake's limit and a kept-alive connection's idle
time), a body within ``body_timeout`` in total. On shutdown, idle connections close at
once and busy ones get ``graceful_timeout`` to finish their answer.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from p2psync.api.accept import (
    ConnectionCaps,
    ConnectionGate,
    serve_capped,
    total_cap_below_fd_limit,
)

from .client_cert_tls import certificate_device_id, make_server_context, serve_tls_connection
from .http1 import Limits, Terminating, serve_connection
from .listeners import bind_reuse_port, split_listen
from .metrics import Metrics
from .service import DiscoveryService, ServerSettings
from .stores import Store

log = logging.getLogger(__name__)

BACKLOG = 1024


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
    metrics: Metrics | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[tuple[list[str], DiscoveryService]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled or ``shutdown_trigger`` returns.

    Reports (bound URLs, service) once listening; with ``settings.url`` None the public
    URL (used in signature checks) becomes the first bound URL. With ``reuse_port`` the
    listening sockets share their port with other processes' (``SO_REUSEPORT``: the
    kernel spreads new connections over them), as ``--workers`` does.
    """
    service = DiscoveryService(settings, store, clock=clock, metrics=metrics)
    tls = certfile is not None and keyfile is not None
    listeners, binds = await _open_listeners(listen, "https" if tls else "http", reuse_port)
    total = total_cap_below_fd_limit(settings.max_connections)
    gate = ConnectionGate(ConnectionCaps(total, min(total, settings.max_per_address)))
    service.gate = gate
    limits = Limits(
        max_body=settings.max_body,
        head_timeout=settings.header_timeout,
        keepalive_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        send_timeout=max(30.0, settings.header_timeout),
    )
    terminating = Terminating()

    async def serve_http(stream: Any, state: dict[str, bytes]) -> None:
        await serve_connection(
            service.handle,
            limits,
            terminating,
            stream,
            _peer_ip(stream),
            state,
            on_refused=service.metrics.reject,
        )

    def plain(stream: trio.SocketStream) -> Awaitable[None]:
        return serve_http(stream, {})

    connect: Callable[[trio.SocketStream], Awaitable[None]] = plain
    if tls:
        assert certfile is not None and keyfile is not None
        context = make_server_context(certfile, keyfile)
        connect = partial(serve_tls_connection, serve_http, context, settings.header_timeout)
        service.certificate_id = certificate_device_id(certfile)
    try:
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
                terminating.set()
                connections.cancel_scope.deadline = trio.current_time() + graceful_timeout
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


def _peer_ip(stream: Any) -> str:
    """The client's IP (a TLS stream's transport, or the socket stream itself)."""
    sock = getattr(getattr(stream, "transport", stream), "socket", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else ""
    except OSError:
        return ""


async def _open_listeners(
    listen: str, scheme: str, reuse_port: bool = False
) -> tuple[list[trio.SocketListener], list[str]]:
    """Listening sockets for ``host:port`` (``[v6]:port``; an empty host: every interface)
    and their URLs."""
    host, port = split_listen(listen)
    if reuse_port:
        listeners = []
        for sock in bind_reuse_port(host, port):
            sock.listen(BACKLOG)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    else:
        listeners = await trio.open_tcp_listeners(port, host=host or None, backlog=BACKLOG)
    binds = []
    for listener in listeners:
        address = listener.socket.getsockname()
        shown = f"[{address[0]}]" if listener.socket.family == socket.AF_INET6 else address[0]
        binds.append(f"{scheme}://{shown}:{address[1]}")
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
