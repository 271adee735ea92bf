"""Device routes: the trusted devices (added, removed, paused), those mDNS found, and
the pending devices and folders other devices offered. The ``add_device`` and
``accept_pending_*`` services are the web interface's too."""

from __future__ import annotations

import trio

from ..config import Config, FolderConfig
from ..errors import NotFoundError
from ..identity import DeviceID
from ..values import FolderKind
from . import edits
from .context import ApiContext
from .http import Request, Route
from .parsing import body, device_in_path, make_dir, str_field, str_list, user_path
from .responses import JSONResponse
from .views import device_view


class DeviceHandlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.node = ctx.node

    def routes(self, p: str) -> list[Route]:
        pause, resume = (
            self.ctx.pause_handler(edits.set_device_paused, on, DeviceID.parse)
            for on in (True, False)
        )
        pending = f"{p}/pending"
        return [
            Route(f"{p}/devices", self.devices),
            Route(f"{p}/devices", self.device_add, methods=["POST"]),
            Route(f"{p}/devices/{{id}}", self.device_remove, methods=["DELETE"]),
            Route(f"{p}/devices/{{id}}/pause", pause, methods=["POST"]),
            Route(f"{p}/devices/{{id}}/resume", resume, methods=["POST"]),
            Route(f"{p}/discovered", self.discovered),
            Route(f"{pending}/devices", self.pending_devices),
            Route(f"{pending}/devices/{{id}}/accept", self.pending_device_accept, methods=["POST"]),
            Route(f"{pending}/devices/{{id}}/reject", self.pending_device_reject, methods=["POST"]),
            Route(f"{pending}/folders", self.pending_folders),
            Route(f"{pending}/folders/{{id}}/accept", self.pending_folder_accept, methods=["POST"]),
            Route(f"{pending}/folders/{{id}}/reject", self.pending_folder_reject, methods=["POST"]),
        ]

    # ---- devices -----------------------------------------------------------------
    async def devices(self, request: Request) -> JSONResponse:
        return JSONResponse(
            [device_view(self.node, d, self.ctx.meter) for d in self.node.config.devices]
        )

    async def device_add(self, request: Request) -> JSONResponse:
        b = await body(request)
        did, existed = await self.add_device(
            DeviceID.parse(str_field(b, "id", required=True)),
            name=str_field(b, "name"),
            addresses=str_list(b, "addresses"),
            introducer=bool(b.get("introducer", False)),
        )
        return JSONResponse(
            {"ok": True, "id": str(did), "updated": existed}, status_code=200 if existed else 201
        )

    async def add_device(
        self, did: DeviceID, *, name: str, addresses: list[str], introducer: bool = False
    ) -> tuple[DeviceID, bool]:
        """Service: trust ``did`` (add or update); returns (its ID, whether it existed)."""
        existed: list[bool] = []

        def edit(cfg: Config) -> Config:
            new, was = edits.add_device(
                cfg,
                self.node.device_id,
                did,
                name=name,
                addresses=addresses,
                introducer=introducer,
            )
            existed.append(was)
            return new

        await self.ctx.change(edit)
        await self.ctx.thread(self.node.pending.remove_device, str(did))
        return did, existed[-1]

    async def device_remove(self, request: Request) -> JSONResponse:
        did = device_in_path(request)
        await self.ctx.change(lambda cfg: edits.remove_device(cfg, did))
        return JSONResponse({"ok": True})

    async def discovered(self, request: Request) -> JSONResponse:
        mdns = self.node.mdns
        devices = []
        if mdns is not None:
            now = trio.current_time()
            for d in mdns.discovered():
                devices.append(
                    {
                        "id": str(d.device_id),
                        "addresses": list(d.addresses),
                        "seen_ago": round(now - d.last_seen, 1),
                    }
                )
        return JSONResponse({"enabled": mdns is not None, "devices": devices})

    # ---- pending -----------------------------------------------------------------
    async def pending_devices(self, request: Request) -> JSONResponse:
        entries = await self.ctx.thread(self.node.pending.devices)
        return JSONResponse([e.__dict__ for e in entries])

    async def pending_folders(self, request: Request) -> JSONResponse:
        entries = await self.ctx.thread(self.node.pending.folders)
        return JSONResponse([e.__dict__ for e in entries])

    async def pending_device_accept(self, request: Request) -> JSONResponse:
        b = await body(request)
        did = device_in_path(request)
        await self.accept_pending_device(did, str_field(b, "name"))
        return JSONResponse({"ok": True, "id": str(did)})

    async def accept_pending_device(self, did: DeviceID, name: str = "") -> None:
        """Service: trust ``did``, a device that asked to connect."""
        entries = await self.ctx.thread(self.node.pending.devices)
        entry = next((e for e in entries if e.device_id == str(did)), None)
        if entry is None:
            raise NotFoundError(f"device {did} is not pending")
        name = name or entry.name
        await self.ctx.change(
            lambda cfg: edits.add_device(cfg, self.node.device_id, did, name=name)[0]
        )
        await self.ctx.thread(self.node.pending.remove_device, str(did))

    async def pending_device_reject(self, request: Request) -> JSONResponse:
        did = str(device_in_path(request))
        await self.ctx.thread(self.node.pending.remove_device, did)
        return JSONResponse({"ok": True})

    async def pending_folder_accept(self, request: Request) -> JSONResponse:
        b = await body(request)
        fc = await self.accept_pending_folder(
            request.path_params["id"],
            str_field(b, "path"),
            str_field(b, "type") or FolderKind.SEND_RECEIVE,
        )
        return JSONResponse(
            {"ok": True, "folder": fc.id, "path": fc.path, "devices": [str(d) for d in fc.devices]}
        )

    async def accept_pending_folder(
        self, folder_id: str, raw_path: str = "", folder_type: str = FolderKind.SEND_RECEIVE
    ) -> FolderConfig:
        """Service: accept a folder a device offered, at ``raw_path`` (default: the
        default accept path), as a ``folder_type`` folder; returns its FolderConfig."""
        home = self.node.home
        if raw_path:
            path = user_path(raw_path)
        else:
            path = edits.default_accept_path(self.node.config, folder_id, home)
        offers = await self.ctx.thread(self.node.pending.folders)
        accepted: list[FolderConfig] = []

        def edit(cfg: Config) -> Config:
            accepted.append(edits.accept_folder(cfg, offers, folder_id, path, home, folder_type))
            return cfg.with_folder(accepted[-1])

        await self.ctx.change(edit, prepare=lambda: make_dir(accepted[-1].resolved_path))
        fc = accepted[-1]
        await self.ctx.thread(self.node.pending.remove_folder, folder_id)
        return fc

    async def pending_folder_reject(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        await self.ctx.thread(self.node.pending.remove_folder, folder_id)
        return JSONResponse({"ok": True})
