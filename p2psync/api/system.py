"""System routes: the node's state, the OpenAPI document, the config and its reload,
relays, and the event long-poll."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import argument_errors, config_to_dict, validate_relay_url
from ..reload import restart_needed
from .context import ApiContext
from .http import Request, Route
from .openapi import openapi_document
from .parsing import body, float_param, int_param, str_list
from .responses import JSONResponse
from .views import system_view

MAX_EVENT_WAIT = 60.0


class SystemHandlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.node = ctx.node

    def routes(self, p: str) -> list[Route]:
        return [
            Route(f"{p}/openapi.json", self.openapi),
            Route(f"{p}/system", self.system),
            Route(f"{p}/config/reload", self.reload, methods=["POST"]),
            Route(f"{p}/config/relays", self.relays_set, methods=["POST"]),
            Route(f"{p}/config", self.config, methods=["GET"]),
            Route(f"{p}/events", self.events),
        ]

    async def system(self, request: Request) -> JSONResponse:
        return JSONResponse(system_view(self.node))

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(openapi_document())

    async def config(self, request: Request) -> JSONResponse:
        """The config the daemon runs with (the last good one if the file is invalid)."""
        return JSONResponse(
            {"config": config_to_dict(self.node.config), "error": self.node.config_error}
        )

    async def reload(self, request: Request) -> JSONResponse:
        async with self.node.config_lock:
            await self.node.reload_config()
        return JSONResponse(
            {
                "ok": True,
                "restart_needed": restart_needed(self.node.running_config, self.node.config),
            }
        )

    async def relays_set(self, request: Request) -> JSONResponse:
        relays = str_list(await body(request), "relays")
        with argument_errors():
            for i, url in enumerate(relays):
                validate_relay_url(url, f"relays[{i}]")
        await self.ctx.change(lambda cfg: replace(cfg, relays=tuple(relays)))
        return JSONResponse({"ok": True, "relays": relays})

    async def events(self, request: Request) -> JSONResponse:
        q = request.query_params
        since = int_param(q.get("since"), "since", 0)
        limit = int_param(q.get("limit"), "limit", 500)
        timeout = float_param(q.get("timeout"), "timeout", 30.0)
        timeout = min(max(timeout, 0.0), MAX_EVENT_WAIT)
        types = {t for t in (q.get("types") or "").split(",") if t} or None
        found = await self.node.events.wait_since(since, types, timeout=timeout)
        names = {str(d.id): d.name for d in self.node.config.devices if d.name}
        return JSONResponse(
            {
                "events": [_named(e.to_json(), names) for e in found[:limit]],
                "last_id": self.node.events.last_id,
            }
        )


def _named(event: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``event`` with ``device_name`` added where its ``device`` has a configured name."""
    name = names.get(str(event["data"].get("device")))
    if name and "device_name" not in event["data"]:
        event["data"] = {**event["data"], "device_name": name}
    return event
