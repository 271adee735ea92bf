"""The control API's app for one node: its handlers, by resource, and their routes.

Every handler is async and runs on the daemon's trio loop; blocking work (index reads,
config saves, the pending store, versions) goes to worker threads. Config changes are
serialised by one lock: load the node's config, edit it (``edits``), save it atomically,
then ``node.apply_config`` so the running node follows without a restart.

The handlers live with their resource: ``system.py`` (system, config, events),
``folders.py``, ``versions.py`` (conflicts and versions), ``devices.py`` (devices,
discovered, pending), ``settings.py``, ``selection.py``, ``links.py``, ``history.py``;
``parsing.py`` reads requests, ``responses.py`` writes JSON and errors, ``context.py``
holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .auth import Guard, allowed_hosts
from .context import ApiContext
from .devices import DeviceHandlers
from .folders import FolderHandlers
from .history import history_routes
from .http import App, Route
from .links import link_routes
from .parsing import body
from .registry import RunningNode
from .responses import EXCEPTION_HANDLERS, JSONResponse
from .selection import selection_routes
from .settings import settings_routes
from .system import SystemHandlers
from .versions import VersionHandlers


class Handlers:
    """The handlers, bound to one node; the web interface calls their services
    (``web.mount``)."""

    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.ctx = ApiContext(node)
        self.system = SystemHandlers(self.ctx)
        self.folders = FolderHandlers(self.ctx)
        self.versions = VersionHandlers(self.ctx)
        self.devices = DeviceHandlers(self.ctx)

    def routes(self, prefix: str) -> list[Route]:
        """Every API route under ``prefix``."""
        node, change = self.node, self.ctx.change
        return [
            *self.system.routes(prefix),
            *self.folders.routes(prefix),
            *self.versions.routes(prefix),
            *self.devices.routes(prefix),
            *settings_routes(node, change, body, JSONResponse),
            *selection_routes(node, change, body, JSONResponse),
            *link_routes(node, body, JSONResponse),
            *history_routes(node, JSONResponse, self.versions.list_versions),
        ]


# Adds the web interface: (its routes, the guard for the whole app) from the handlers,
# the API key, the API's guard and the bound address (``p2psync.web.mount``).
WebMount = Callable[[Handlers, str, Guard, Callable[[], str | None]], tuple[list[Route], Any]]


def build_app(
    node: RunningNode,
    *,
    key: str,
    get_bound: Callable[[], str | None] | None = None,
    web: WebMount | None = None,
) -> App:
    """The control API for ``node``, guarded by ``key`` and the Host check, and (``web``)
    the web interface, guarded by sessions.

    ``get_bound`` returns the bound "host:port" (known after binding; default
    ``node.api_address``).
    """
    api = Handlers(node)
    bound = get_bound or (lambda: node.api_address)
    routes = api.routes("/api")
    guard: Any = Guard(key=key, get_hosts=lambda: allowed_hosts(bound()))
    if web is not None:  # the web interface, on the same address (DESIGN §11)
        web_routes, guard = web(api, key, guard, bound)
        routes += web_routes
    return App(routes, exception_handlers=EXCEPTION_HANDLERS, guard=guard)
