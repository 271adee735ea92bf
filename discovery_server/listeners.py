"""Listening addresses: ``HOST:PORT`` parsing and sockets shared with ``SO_REUSEPORT``."""

from __future__ import annotations

import socket


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (an empty host: every interface) -> (host, port)."""
    host, _, port_text = listen.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT") from None
    return host.strip("[]"), port


def bind_reuse_port(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address ``host`` resolves to, on ``port``, with
    ``SO_REUSEPORT`` (not listening yet). With port 0 the first socket's port is used for
    the rest, so all share one port number; the caller closes them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
