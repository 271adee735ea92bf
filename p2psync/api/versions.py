"""A folder's conflicts and archived versions: listed, restored, and a conflict resolved
(the ``list_versions``, ``restore_version`` and ``keep_conflict`` services are the web
interface's and the history routes' too)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..protocol.names import validate_name
from .context import ApiContext
from .http import HTTPException, Request, Route
from .parsing import body, parse_time, str_field
from .responses import JSONResponse
from .views import conflicts_in


class VersionHandlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.node = ctx.node

    def routes(self, p: str) -> list[Route]:
        return [
            Route(f"{p}/folders/{{id}}/conflicts", self.conflicts),
            Route(f"{p}/folders/{{id}}/versions", self.versions),
            Route(f"{p}/folders/{{id}}/versions/restore", self.versions_restore, methods=["POST"]),
        ]

    async def conflicts(self, request: Request) -> JSONResponse:
        fc = self.ctx.folder_config(request.path_params["id"])
        found = await self.ctx.thread(conflicts_in, self.node.index, fc.id)
        return JSONResponse({"folder": fc.id, "conflicts": found})

    async def versions(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        found = await self.list_versions(folder_id, request.query_params.get("path") or None)
        return JSONResponse(
            {
                "folder": folder_id,
                "versions": [
                    {
                        "name": v.name,
                        "time": v.version_time.isoformat(),
                        "timestamp": v.timestamp,
                        "size": v.size,
                        "archive_name": v.archive_name,
                    }
                    for v in found
                ],
            }
        )

    async def list_versions(self, folder_id: str, path: str | None) -> list[Any]:
        """Service: the folder's archived versions (of ``path``, or of every file)."""
        runner = self.ctx.runner(folder_id)
        module = _versioner_module()
        if path is not None:
            validate_name(path)
        return list(await self.ctx.thread(module.list_versions, runner.fs, path))

    async def versions_restore(self, request: Request) -> JSONResponse:
        b = await body(request)
        path = str_field(b, "path", required=True)
        restored = await self.restore_version(
            request.path_params["id"], path, parse_time(b.get("at"))
        )
        return JSONResponse({"ok": True, "path": path, "restored_from": restored})

    async def restore_version(self, folder_id: str, path: str, at: dt.datetime | None) -> str:
        """Service: put back the newest version of ``path`` at or before ``at``; the file
        there now is archived first. Returns the archive name restored."""
        runner = self.ctx.runner(folder_id)
        module = _versioner_module()
        validate_name(path)
        restored = await self.ctx.thread(
            lambda: module.restore(runner.fs, path, at, versioner=runner.versioner)
        )
        runner.request_scan([path])
        return str(restored)

    async def keep_conflict(self, folder_id: str, copy: str, keep: str) -> str:
        """Service: resolve a conflict by keeping the copy or the original; the other goes
        to the folder's versioning. Returns the name kept."""
        from ..sync.resolve import keep_one, original_of

        runner = self.ctx.runner(folder_id)
        kept = await self.ctx.thread(
            lambda: keep_one(runner.fs, copy, keep, versioner=runner.versioner)
        )
        runner.request_scan([copy, str(original_of(copy))])
        return str(kept)


def _versioner_module() -> Any:
    try:
        from ..sync import versioner
    except ImportError as exc:
        raise HTTPException(501, f"file versioning is not available in this build ({exc})") from exc
    if not (hasattr(versioner, "list_versions") and hasattr(versioner, "restore")):
        raise HTTPException(501, "file versioning is not available in this build (no list/restore)")
    return versioner
