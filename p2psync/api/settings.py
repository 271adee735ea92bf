"""Settings routes: read and change any setting of the node, a folder or a device.

``GET`` answers the scope's settings as in config.toml; ``PATCH`` takes
``{"set": {key: value}, "add": {key: [values]}, "remove": {key: [values]}}`` (dotted
keys, all applied together or none), validated by ``p2psync.settings`` the way
config.toml is, then saved and applied like every other config change.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Config
from ..errors import UsageError
from ..reload import restart_needed
from ..settings import Scope, change_settings, settings_of
from .http import Request, Response, Route
from .registry import RunningNode

Change = Callable[[Callable[[Config], Config]], Awaitable[Config]]
Body = Callable[[Request], Awaitable[dict[str, Any]]]


def settings_routes(
    node: RunningNode, change: Change, body_of: Body, respond: Callable[[Any], Response]
) -> list[Route]:
    """The routes, for the node's running config, its ``change`` (lock, save, apply)."""

    def scope_of(kind: str) -> Callable[[Request], Scope]:
        return lambda request: Scope(kind, request.path_params.get("id", ""))

    def read(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return respond(settings_of(node.config, scope_of(kind)(request)))

        return handler

    def patch(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            scope = scope_of(kind)(request)
            body = await body_of(request)
            unknown = sorted(set(body) - {"set", "add", "remove"})
            if unknown:
                raise UsageError(f"unknown field {unknown[0]!r}; use set, add or remove")
            set_values = _table(body, "set")
            add, remove = _lists(body, "add"), _lists(body, "remove")
            new = await change(
                lambda cfg: change_settings(
                    cfg, scope, set_values=set_values, add=add, remove=remove
                )
            )
            return respond(
                {
                    "ok": True,
                    "settings": settings_of(new, scope),
                    "restart_needed": restart_needed(node.running_config, new),
                }
            )

        return handler

    routes = []
    for kind, path in (
        ("node", "/api/settings"),
        ("folder", "/api/folders/{id}/settings"),
        ("device", "/api/devices/{id}/settings"),
    ):
        routes.append(Route(path, read(kind)))
        routes.append(Route(path, patch(kind), methods=["PATCH"]))
    return routes


def _table(body: dict[str, Any], field: str) -> dict[str, Any]:
    value = body.get(field) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UsageError(f"{field!r} must be an object of setting keys")
    return value


def _lists(body: dict[str, Any], field: str) -> dict[str, list[Any]]:
    table = _table(body, field)
    for key, values in table.items():
        if not isinstance(values, list):
            raise UsageError(f"{field}.{key} must be a list, not {json.dumps(values)}")
    return table
