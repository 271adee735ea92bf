"""Folder routes: the folders and one folder's state and completion, adding, removing,
sharing, pausing, and what the user asks of a running folder (scan, override, revert,
confirm deletes). The ``add_folder`` and ``share_folder`` services are the web
interface's too."""

from __future__ import annotations

from typing import Any

from ..config import Config, FolderConfig
from ..errors import NotFoundError
from ..identity import DeviceID
from ..protocol.names import validate_name
from ..values import FolderKind
from . import edits
from .context import ApiContext
from .http import HTTPException, Request, Route
from .parsing import body, make_dir, str_field, str_list, user_path
from .progress import completion_json
from .responses import JSONResponse
from .views import folder_view


class FolderHandlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.node = ctx.node

    def routes(self, p: str) -> list[Route]:
        pause, resume = (
            self.ctx.pause_handler(edits.set_folder_paused, on, str) for on in (True, False)
        )
        return [
            Route(f"{p}/folders", self.folders),
            Route(f"{p}/folders", self.folder_add, methods=["POST"]),
            Route(f"{p}/folders/{{id}}", self.folder),
            Route(f"{p}/folders/{{id}}", self.folder_remove, methods=["DELETE"]),
            Route(f"{p}/folders/{{id}}/share", self.folder_share, methods=["POST"]),
            Route(f"{p}/folders/{{id}}/pause", pause, methods=["POST"]),
            Route(f"{p}/folders/{{id}}/resume", resume, methods=["POST"]),
            Route(f"{p}/folders/{{id}}/scan", self.folder_scan, methods=["POST"]),
            Route(f"{p}/folders/{{id}}/override", self.folder_override, methods=["POST"]),
            Route(f"{p}/folders/{{id}}/revert", self.folder_revert, methods=["POST"]),
            Route(
                f"{p}/folders/{{id}}/confirm-deletes",
                self.folder_confirm_deletes,
                methods=["POST"],
            ),
            Route(f"{p}/folders/{{id}}/completion", self.completion),
        ]

    async def folders(self, request: Request) -> JSONResponse:
        ctx = self.ctx
        return JSONResponse(
            [
                await folder_view(self.node, fc, ctx.limiter, ctx.meter, ctx.completions)
                for fc in self.node.config.folders
            ]
        )

    async def folder(self, request: Request) -> JSONResponse:
        ctx = self.ctx
        fc = ctx.folder_config(request.path_params["id"])
        return JSONResponse(
            await folder_view(self.node, fc, ctx.limiter, ctx.meter, ctx.completions)
        )

    async def completion(self, request: Request) -> JSONResponse:
        """Like Syncthing's /rest/db/completion: how much of the folder's global state a
        device (default: this one) has, by bytes."""
        fc = self.ctx.folder_config(request.path_params["id"])
        raw = request.query_params.get("device") or ""
        did = DeviceID.parse(raw) if raw else self.node.device_id
        if did != self.node.device_id and did not in fc.devices:
            raise NotFoundError(f"folder {fc.id!r} is not shared with {did}")

        def read() -> dict[str, Any]:
            index = self.node.index
            glob = index.global_counts(fc.id)
            if did == self.node.device_id:
                need = index.need_counts(fc.id)
            elif did.raw in index.devices(fc.id):
                need = self.ctx.completions.need_of(index, fc.id, did.raw)
            else:
                return {
                    "completion": 0.0,
                    "global_bytes": glob.bytes,
                    "need_bytes": glob.bytes,
                    "need_items": None,
                    "need_deletes": None,
                    "index_received": False,
                }
            return {**completion_json(glob, need), "index_received": True}

        data = await self.ctx.thread(read)
        return JSONResponse({"folder": fc.id, "device": str(did), **data})

    async def folder_add(self, request: Request) -> JSONResponse:
        b = await body(request)
        fc = await self.add_folder(
            str_field(b, "path", required=True),
            folder_id=str_field(b, "id"),
            label=str_field(b, "label"),
            folder_type=str_field(b, "type") or FolderKind.SEND_RECEIVE,
            share=[DeviceID.parse(d) for d in str_list(b, "devices") + str_list(b, "share")],
        )
        return JSONResponse({"ok": True, "folder": fc.id, "path": fc.path}, status_code=201)

    async def add_folder(
        self,
        raw_path: str,
        *,
        folder_id: str,
        label: str,
        folder_type: str,
        share: list[DeviceID],
    ) -> FolderConfig:
        """Service: add a folder (creating its directory), shared with ``share``."""
        path = user_path(raw_path)
        created: list[FolderConfig] = []

        def edit(cfg: Config) -> Config:
            fc = edits.add_folder(
                cfg,
                path,
                folder_id=folder_id or None,
                label=label,
                folder_type=folder_type,
                share=share,
                home=self.node.home,
            )
            created.append(fc)
            return cfg.with_folder(fc)

        await self.ctx.change(edit, prepare=lambda: make_dir(path))
        fc = created[-1]
        await self.ctx.thread(self.node.pending.remove_folder, fc.id)
        return fc

    async def folder_remove(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        await self.ctx.change(lambda cfg: edits.remove_folder(cfg, folder_id))
        return JSONResponse({"ok": True})

    async def folder_share(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        did = DeviceID.parse(str_field(await body(request), "device", required=True))
        already = await self.share_folder(folder_id, did)
        return JSONResponse({"ok": True, "already_shared": already})

    async def share_folder(self, folder_id: str, did: DeviceID) -> bool:
        """Service: share ``folder_id`` with ``did``; True if it already was."""
        already: list[bool] = []

        def edit(cfg: Config) -> Config:
            new, was = edits.share_folder(cfg, folder_id, did)
            already.append(was)
            return new

        await self.ctx.change(edit)
        return already[-1]

    async def folder_scan(self, request: Request) -> JSONResponse:
        runner = self.ctx.runner(request.path_params["id"])
        b = await body(request)
        paths = str_list(b, "paths") if "paths" in b else None
        for p in paths or ():
            validate_name(p)
        runner.request_scan(paths or None)
        return JSONResponse({"ok": True}, status_code=202)

    async def folder_override(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        runner = self.ctx.runner(folder_id)
        if runner.config.type is not FolderKind.SEND_ONLY:
            raise HTTPException(
                409, f"folder {folder_id!r} is not send-only; override applies to send-only folders"
            )
        sequence = await runner.override()
        return JSONResponse({"ok": True, "sequence": sequence})

    async def folder_revert(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        runner = self.ctx.runner(folder_id)
        if runner.config.type is not FolderKind.RECEIVE_ONLY:
            raise HTTPException(
                409,
                f"folder {folder_id!r} is not receive-only; revert applies to receive-only folders",
            )
        reverted = await runner.revert()
        return JSONResponse({"ok": True, "reverted": reverted})

    async def folder_confirm_deletes(self, request: Request) -> JSONResponse:
        self.ctx.runner(request.path_params["id"]).confirm_deletes()
        return JSONResponse({"ok": True})
