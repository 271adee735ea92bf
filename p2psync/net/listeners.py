"""The sockets a node listens on, replaceable while it runs (a changed ``listen``).

The new addresses are bound first, so an address that cannot be bound (in use, not
local) leaves the old ones serving and the error goes to the caller. Then the old
listeners stop accepting and close; connections they already accepted are not touched,
because their handlers run in the connection manager's nursery, not in the listeners'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from ..endpoints import Endpoint, ListenAddress

# Accepts on one listener until cancelled, running each connection's handler in the
# nursery it is given (the connection manager's: connections outlive their listener).
ServeListener = Callable[[trio.SocketListener, trio.Nursery], Awaitable[None]]


async def open_listeners_announced(
    addresses: Sequence[ListenAddress],
) -> tuple[list[trio.SocketListener], list[str]]:
    """Bind every one of ``addresses`` (all or none: a failure closes the ones already
    bound and raises the OSError). Also returns the addresses to announce: each endpoint
    as configured (a host name stays a host name, an unspecified host lets the discovery
    server fill in the source address), a port 0 replaced by the bound port."""
    listeners: list[trio.SocketListener] = []
    announce: list[str] = []
    try:
        for address in addresses:
            endpoint = address.endpoint
            opened = await trio.open_tcp_listeners(endpoint.port, host=endpoint.host)
            listeners.extend(opened)
            port = opened[0].socket.getsockname()[1] if opened else endpoint.port
            announce.append(str(Endpoint(endpoint.scheme, endpoint.host, port)))
    except BaseException:
        for listener in listeners:
            await listener.aclose()
        raise
    return listeners, announce


def bound_addresses(listeners: Sequence[trio.SocketListener]) -> list[str]:
    """What ``listeners`` are bound to, as tcp:// URLs (a port 0 resolved)."""
    out = []
    for listener in listeners:
        host, port = listener.socket.getsockname()[:2]
        out.append(str(Endpoint("tcp", host, port)))
    return out


class ListenerGroup:
    """Serves one set of listeners at a time; ``replace`` swaps in another."""

    def __init__(self, serve_listener: ServeListener) -> None:
        self._serve_listener = serve_listener
        self._scope: trio.CancelScope | None = None

    def serve(self, nursery: trio.Nursery, listeners: list[trio.SocketListener]) -> None:
        """Serve ``listeners`` (handlers in ``nursery``), then stop the previous ones."""
        old, self._scope = self._scope, trio.CancelScope()
        nursery.start_soon(self._serve, self._scope, listeners, nursery)
        if old is not None:
            old.cancel()

    async def _serve(
        self,
        scope: trio.CancelScope,
        listeners: list[trio.SocketListener],
        handlers: trio.Nursery,
    ) -> None:
        with scope:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._serve_listener, listener, handlers)
        for listener in listeners:
            await listener.aclose()
