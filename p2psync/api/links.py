"""The control API's share-link endpoints (the links themselves: ``p2psync/links``).

``GET /api/links`` (the listener and every link with its recent downloads),
``POST /api/links`` (create), ``POST /api/links/{id}/revoke``,
``GET /api/links/{id}/downloads``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .http import HTTPException, Request, Response, Route

if TYPE_CHECKING:
    from .registry import LinkService, RunningNode


BodyReader = Callable[[Request], Awaitable[dict[str, Any]]]


def link_routes(
    node: RunningNode, read_body: BodyReader, json_response: type[Response]
) -> list[Route]:
    def manager() -> LinkService:
        links = node.links
        if links is None:
            raise HTTPException(503, "share links are not available on this node")
        return links

    async def listing(request: Request) -> Response:
        return json_response(await manager().links())

    async def create(request: Request) -> Response:
        body = await read_body(request)
        folder = body.get("folder")
        if not isinstance(folder, str) or not folder:
            raise UsageError("'folder' is required")
        created = await manager().create(
            folder=folder,
            path=_opt(body, "path", str) or "",
            expires_in=_opt(body, "expires_in", float),
            password=_opt(body, "password", str),
            max_downloads=_opt(body, "max_downloads", int),
            listen=_opt(body, "listen", str),
            public_url=_opt(body, "public_url", str),
        )
        return json_response({"link": created, "listener": manager().listener_view()})

    async def revoke(request: Request) -> Response:
        return json_response(await manager().revoke(request.path_params["id"]))

    async def downloads(request: Request) -> Response:
        links = manager()
        link = await links.store_call("find", request.path_params["id"])
        rows = await links.store_call("downloads", link.id)
        return json_response([row.__dict__ for row in rows])

    return [
        Route("/api/links", listing),
        Route("/api/links", create, methods=["POST"]),
        Route("/api/links/{id}/revoke", revoke, methods=["POST"]),
        Route("/api/links/{id}/downloads", downloads),
    ]


def _opt(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UsageError(f"{key!r} must be a {kind.__name__}")
    return value
