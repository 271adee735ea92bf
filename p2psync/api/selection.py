"""Selective sync routes: what a folder keeps on this device, read and changed.

``GET /api/folders/{id}/selection`` answers the selection and what it leaves out;
``PUT`` sets it (``{"selected": [...]}``, ``[]`` = the whole folder); ``POST
.../selection/select`` and ``.../selection/unselect`` (``{"paths": [...]}``) add and
remove paths as ``p2psync folder select``/``unselect`` do. Changes are saved and applied
like every other config change (``Node.change_config``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..config import Config, FolderConfig
from ..errors import NotFoundError, UsageError
from ..scanner.scan import FLAG_NOT_SELECTED
from . import edits
from .http import Request, Response, Route
from .registry import RunningNode

Change = Callable[[Callable[[Config], Config]], Awaitable[Config]]
Body = Callable[[Request], Awaitable[dict[str, Any]]]
KEPT_LISTED = 1000


def selection_json(
    node: RunningNode, fc: FolderConfig, left_out: tuple[int, int]
) -> dict[str, Any]:
    """The folder's selection, what it leaves out (``left_out``: items and bytes), and
    the items kept here outside it (a local change, not on another device yet)."""
    runner = node.model.folders.get(fc.id)
    status = runner.status if runner is not None else None
    kept = dict(status.selection_kept) if status is not None else {}
    return {
        "folder": fc.id,
        "selected": list(fc.selected),
        "everything": not fc.selected,
        "left_out_items": left_out[0],
        "left_out_bytes": left_out[1],
        "kept_count": status.selection_kept_count if status is not None else 0,
        "kept": [{"name": n, "reason": r} for n, r in sorted(kept.items())[:KEPT_LISTED]],
    }


def left_out_totals(node: RunningNode, folder_id: str) -> tuple[int, int]:
    """Blocking: items and bytes the selection leaves out of ``folder_id`` here."""
    return node.index.local_flagged_totals(folder_id, FLAG_NOT_SELECTED)


def selection_routes(
    node: RunningNode, change: Change, body_of: Body, respond: Callable[[Any], Response]
) -> list[Route]:
    def folder_of(request: Request) -> str:
        folder_id = request.path_params["id"]
        if node.config.folder(folder_id) is None:
            raise NotFoundError(f"folder {folder_id!r} does not exist")
        return folder_id

    async def answer(folder_id: str, cfg: Config) -> Response:
        fc = cfg.folder(folder_id)
        assert fc is not None
        totals = await trio.to_thread.run_sync(left_out_totals, node, folder_id)
        return respond(selection_json(node, fc, totals))

    async def read(request: Request) -> Response:
        folder_id = folder_of(request)
        return await answer(folder_id, node.config)

    async def put(request: Request) -> Response:
        folder_id = folder_of(request)
        paths = _paths(await body_of(request), "selected")
        new = await change(lambda cfg: edits.set_selection(cfg, folder_id, paths))
        return await answer(folder_id, new)

    def edit(
        how: Callable[[Config, str, list[str]], Config],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            folder_id = folder_of(request)
            paths = _paths(await body_of(request), "paths")
            new = await change(lambda cfg: how(cfg, folder_id, paths))
            return await answer(folder_id, new)

        return handler

    path = "/api/folders/{id}/selection"
    return [
        Route(path, read),
        Route(path, put, methods=["PUT"]),
        Route(f"{path}/select", edit(edits.select_paths), methods=["POST"]),
        Route(f"{path}/unselect", edit(edits.unselect_paths), methods=["POST"]),
    ]


def _paths(body: dict[str, Any], key: str) -> list[str]:
    if key not in body:
        raise UsageError(f"{key!r} is required (a list of folder-relative paths)")
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key!r} must be a list of strings")
    return value
