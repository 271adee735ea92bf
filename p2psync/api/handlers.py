"""The control API's app: routes, JSON errors and config edits for one node.

Every handler is async and runs on the daemon's trio loop; blocking work (index reads,
config saves, the pending store, versions) goes to worker threads. Config changes are
serialised by one lock: load the node's config, edit it (``edits``), save it atomically,
then ``node.apply_config`` so the running node follows without a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from ..config import (
    Config,
    FolderConfig,
    argument_errors,
    config_to_dict,
    validate_relay_url,
)
from ..errors import ConfigError, DeviceIDError, NotFoundError, P2PSyncError, UsageError
from ..identity import DeviceID
from ..protocol.names import validate_name
from ..reload import restart_needed
from . import edits
from .auth import Guard, allowed_hosts
from .history import history_routes
from .http import App, HTTPException, Request, Response, Route
from .links import link_routes
from .openapi import openapi_document
from .progress import CompletionCache, completion_json
from .rates import RateMeter
from .registry import RunningFolder, RunningNode
from .selection import selection_routes
from .settings import settings_routes
from .views import conflicts_in, device_view, folder_view, system_view

log = logging.getLogger("p2psync.api")

MAX_EVENT_WAIT = 60.0
MAX_BODY = 1 << 20
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime holds


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False).encode("utf-8")


def _error(status: int, message: str, kind: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if kind:
        body["kind"] = kind
    return JSONResponse(body, status_code=status)


def status_for(exc: P2PSyncError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UsageError | ConfigError | DeviceIDError | ValueError):
        return 400
    return 500


class _Api:
    """The handlers, bound to one node."""

    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.limiter = trio.CapacityLimiter(2)
        self.meter = RateMeter()
        self.completions = CompletionCache()

    # ---- helpers -----------------------------------------------------------------
    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def _change(
        self, edit: Callable[[Config], Config], prepare: Callable[[], None] | None = None
    ) -> Config:
        """Apply ``edit`` to the current config (saved, then applied): ``Node.change_config``."""
        return await self.node.change_config(edit, prepare)

    def _folder_config(self, folder_id: str) -> FolderConfig:
        fc = self.node.config.folder(folder_id)
        if fc is None:
            raise NotFoundError(f"folder {folder_id!r} does not exist")
        return fc

    def _runner(self, folder_id: str) -> RunningFolder:
        self._folder_config(folder_id)
        runner = self.node.model.folders.get(folder_id)
        if runner is None:
            raise HTTPException(409, f"folder {folder_id!r} is not running")
        return runner

    # ---- system ------------------------------------------------------------------
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
        relays = _str_list(await _body(request), "relays")
        with argument_errors():
            for i, url in enumerate(relays):
                validate_relay_url(url, f"relays[{i}]")
        await self._change(lambda cfg: replace(cfg, relays=tuple(relays)))
        return JSONResponse({"ok": True, "relays": relays})

    async def events(self, request: Request) -> JSONResponse:
        q = request.query_params
        since = _int_param(q.get("since"), "since", 0)
        limit = _int_param(q.get("limit"), "limit", 500)
        timeout = _float_param(q.get("timeout"), "timeout", 30.0)
        timeout = min(max(timeout, 0.0), MAX_EVENT_WAIT)
        types = {t for t in (q.get("types") or "").split(",") if t} or None
        found = await self.node.events.wait_since(since, types, timeout=timeout)
        names = {d.id: d.name for d in self.node.config.devices if d.name}
        return JSONResponse(
            {
                "events": [_named(e.to_json(), names) for e in found[:limit]],
                "last_id": self.node.events.last_id,
            }
        )

    # ---- folders -----------------------------------------------------------------
    async def folders(self, request: Request) -> JSONResponse:
        return JSONResponse(
            [
                await folder_view(self.node, fc, self.limiter, self.meter, self.completions)
                for fc in self.node.config.folders
            ]
        )

    async def folder(self, request: Request) -> JSONResponse:
        fc = self._folder_config(request.path_params["id"])
        return JSONResponse(
            await folder_view(self.node, fc, self.limiter, self.meter, self.completions)
        )

    async def completion(self, request: Request) -> JSONResponse:
        """Like Syncthing's /rest/db/completion: how much of the folder's global state a
        device (default: this one) has, by bytes."""
        fc = self._folder_config(request.path_params["id"])
        raw = request.query_params.get("device") or ""
        did = DeviceID.parse(raw) if raw else self.node.device_id
        if did != self.node.device_id and str(did) not in fc.devices:
            raise NotFoundError(f"folder {fc.id!r} is not shared with {did}")

        def read() -> dict[str, Any]:
            index = self.node.index
            glob = index.global_counts(fc.id)
            if did == self.node.device_id:
                need = index.need_counts(fc.id)
            elif did.raw in index.devices(fc.id):
                need = self.completions.need_of(index, fc.id, did.raw)
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

        data = await self._thread(read)
        return JSONResponse({"folder": fc.id, "device": str(did), **data})

    async def folder_add(self, request: Request) -> JSONResponse:
        body = await _body(request)
        fc = await self.add_folder(
            _str(body, "path", required=True),
            folder_id=_str(body, "id"),
            label=_str(body, "label"),
            folder_type=_str(body, "type") or "sendreceive",
            share=_str_list(body, "devices") + _str_list(body, "share"),
        )
        return JSONResponse({"ok": True, "folder": fc.id, "path": fc.path}, status_code=201)

    async def add_folder(
        self, raw_path: str, *, folder_id: str, label: str, folder_type: str, share: list[str]
    ) -> Any:
        """Service: add a folder (creating its directory), shared with ``share``."""
        path = _user_path(raw_path)
        created: list[Any] = []

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

        await self._change(edit, prepare=lambda: _make_dir(path))
        fc = created[-1]
        await self._thread(self.node.pending.remove_folder, fc.id)
        return fc

    async def folder_remove(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        await self._change(lambda cfg: edits.remove_folder(cfg, folder_id))
        return JSONResponse({"ok": True})

    async def folder_share(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        device = _str(await _body(request), "device", required=True)
        already = await self.share_folder(folder_id, device)
        return JSONResponse({"ok": True, "already_shared": already})

    async def share_folder(self, folder_id: str, device: str) -> bool:
        """Service: share ``folder_id`` with ``device``; True if it already was."""
        already: list[bool] = []

        def edit(cfg: Config) -> Config:
            new, was = edits.share_folder(cfg, folder_id, device)
            already.append(was)
            return new

        await self._change(edit)
        return already[-1]

    def _pause(self, paused: bool) -> Callable[[Request], Any]:
        async def handler(request: Request) -> JSONResponse:
            folder_id = request.path_params["id"]
            await self._change(lambda cfg: edits.set_folder_paused(cfg, folder_id, paused))
            return JSONResponse({"ok": True, "paused": paused})

        return handler

    async def folder_scan(self, request: Request) -> JSONResponse:
        runner = self._runner(request.path_params["id"])
        body = await _body(request)
        paths = _str_list(body, "paths") if "paths" in body else None
        for p in paths or ():
            validate_name(p)
        runner.request_scan(paths or None)
        return JSONResponse({"ok": True}, status_code=202)

    async def folder_override(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        runner = self._runner(folder_id)
        if runner.config.type != "sendonly":
            raise HTTPException(
                409, f"folder {folder_id!r} is not send-only; override applies to send-only folders"
            )
        sequence = await runner.override()
        return JSONResponse({"ok": True, "sequence": sequence})

    async def folder_revert(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        runner = self._runner(folder_id)
        if runner.config.type != "receiveonly":
            raise HTTPException(
                409,
                f"folder {folder_id!r} is not receive-only; revert applies to receive-only folders",
            )
        reverted = await runner.revert()
        return JSONResponse({"ok": True, "reverted": reverted})

    async def folder_confirm_deletes(self, request: Request) -> JSONResponse:
        self._runner(request.path_params["id"]).confirm_deletes()
        return JSONResponse({"ok": True})

    async def conflicts(self, request: Request) -> JSONResponse:
        fc = self._folder_config(request.path_params["id"])
        found = await self._thread(conflicts_in, self.node.index, fc.id)
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
        runner = self._runner(folder_id)
        module = _versioner_module()
        if path is not None:
            validate_name(path)
        return list(await self._thread(module.list_versions, runner.fs, path))

    async def versions_restore(self, request: Request) -> JSONResponse:
        body = await _body(request)
        path = _str(body, "path", required=True)
        restored = await self.restore_version(
            request.path_params["id"], path, parse_time(body.get("at"))
        )
        return JSONResponse({"ok": True, "path": path, "restored_from": restored})

    async def restore_version(self, folder_id: str, path: str, at: dt.datetime | None) -> str:
        """Service: put back the newest version of ``path`` at or before ``at``; the file
        there now is archived first. Returns the archive name restored."""
        runner = self._runner(folder_id)
        module = _versioner_module()
        validate_name(path)
        restored = await self._thread(
            lambda: module.restore(runner.fs, path, at, versioner=runner.versioner)
        )
        runner.request_scan([path])
        return str(restored)

    async def keep_conflict(self, folder_id: str, copy: str, keep: str) -> str:
        """Service: resolve a conflict by keeping the copy or the original; the other goes
        to the folder's versioning. Returns the name kept."""
        from ..sync.resolve import keep_one, original_of

        runner = self._runner(folder_id)
        kept = await self._thread(
            lambda: keep_one(runner.fs, copy, keep, versioner=runner.versioner)
        )
        runner.request_scan([copy, str(original_of(copy))])
        return str(kept)

    # ---- devices -----------------------------------------------------------------
    async def devices(self, request: Request) -> JSONResponse:
        return JSONResponse(
            [device_view(self.node, d, self.meter) for d in self.node.config.devices]
        )

    async def device_add(self, request: Request) -> JSONResponse:
        body = await _body(request)
        did, existed = await self.add_device(
            _str(body, "id", required=True),
            name=_str(body, "name"),
            addresses=_str_list(body, "addresses"),
            introducer=bool(body.get("introducer", False)),
        )
        return JSONResponse(
            {"ok": True, "id": did, "updated": existed}, status_code=200 if existed else 201
        )

    async def add_device(
        self, device: str, *, name: str, addresses: list[str], introducer: bool = False
    ) -> tuple[str, bool]:
        """Service: trust ``device`` (add or update); returns (its ID, whether it existed)."""
        existed: list[bool] = []

        def edit(cfg: Config) -> Config:
            new, was = edits.add_device(
                cfg,
                self.node.device_id,
                device,
                name=name,
                addresses=addresses,
                introducer=introducer,
            )
            existed.append(was)
            return new

        await self._change(edit)
        did = str(DeviceID.parse(device))
        await self._thread(self.node.pending.remove_device, did)
        return did, existed[-1]

    async def device_remove(self, request: Request) -> JSONResponse:
        device = request.path_params["id"]
        await self._change(lambda cfg: edits.remove_device(cfg, device))
        return JSONResponse({"ok": True})

    def _pause_device(self, paused: bool) -> Callable[[Request], Any]:
        async def handler(request: Request) -> JSONResponse:
            device = request.path_params["id"]
            await self._change(lambda cfg: edits.set_device_paused(cfg, device, paused))
            return JSONResponse({"ok": True, "paused": paused})

        return handler

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
        entries = await self._thread(self.node.pending.devices)
        return JSONResponse([e.__dict__ for e in entries])

    async def pending_folders(self, request: Request) -> JSONResponse:
        entries = await self._thread(self.node.pending.folders)
        return JSONResponse([e.__dict__ for e in entries])

    async def pending_device_accept(self, request: Request) -> JSONResponse:
        body = await _body(request)
        did = await self.accept_pending_device(request.path_params["id"], _str(body, "name"))
        return JSONResponse({"ok": True, "id": did})

    async def accept_pending_device(self, device: str, name: str = "") -> str:
        """Service: trust a device that asked to connect; returns its ID."""
        did = str(DeviceID.parse(device))
        entries = await self._thread(self.node.pending.devices)
        entry = next((e for e in entries if e.device_id == did), None)
        if entry is None:
            raise NotFoundError(f"device {did} is not pending")
        name = name or entry.name
        await self._change(
            lambda cfg: edits.add_device(cfg, self.node.device_id, did, name=name)[0]
        )
        await self._thread(self.node.pending.remove_device, did)
        return did

    async def pending_device_reject(self, request: Request) -> JSONResponse:
        did = str(DeviceID.parse(request.path_params["id"]))
        await self._thread(self.node.pending.remove_device, did)
        return JSONResponse({"ok": True})

    async def pending_folder_accept(self, request: Request) -> JSONResponse:
        body = await _body(request)
        fc = await self.accept_pending_folder(
            request.path_params["id"], _str(body, "path"), _str(body, "type") or "sendreceive"
        )
        return JSONResponse(
            {"ok": True, "folder": fc.id, "path": fc.path, "devices": list(fc.devices)}
        )

    async def accept_pending_folder(
        self, folder_id: str, raw_path: str = "", folder_type: str = "sendreceive"
    ) -> Any:
        """Service: accept a folder a device offered, at ``raw_path`` (default: the
        default accept path), as a ``folder_type`` folder; returns its FolderConfig."""
        home = self.node.home
        if raw_path:
            path = _user_path(raw_path)
        else:
            path = edits.default_accept_path(self.node.config, folder_id, home)
        offers = await self._thread(self.node.pending.folders)
        accepted: list[Any] = []

        def edit(cfg: Config) -> Config:
            accepted.append(edits.accept_folder(cfg, offers, folder_id, path, home, folder_type))
            return cfg.with_folder(accepted[-1])

        await self._change(edit, prepare=lambda: _make_dir(accepted[-1].resolved_path))
        fc = accepted[-1]
        await self._thread(self.node.pending.remove_folder, folder_id)
        return fc

    async def pending_folder_reject(self, request: Request) -> JSONResponse:
        folder_id = request.path_params["id"]
        await self._thread(self.node.pending.remove_folder, folder_id)
        return JSONResponse({"ok": True})


Handlers = _Api  # the handlers, as the web interface calls them (``web.mount``)


def _named(event: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``event`` with ``device_name`` added where its ``device`` has a configured name."""
    name = names.get(str(event["data"].get("device")))
    if name and "device_name" not in event["data"]:
        event["data"] = {**event["data"], "device_name": name}
    return event


# ---- request parsing ---------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()  # at most MAX_BODY: the server answers 413 beyond it
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"request body is not JSON: {exc}") from None
    except RecursionError:
        raise UsageError("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise UsageError("request body must be a JSON object")
    return data


def _str(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise UsageError(f"{key!r} is required")
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{key!r} must be a string")
    return value


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key!r} must be a list of strings")
    return list(value)


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name} must be an integer, not {raw!r}") from None


def _float_param(raw: str | None, name: str, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{name} must be finite")
    return value


def parse_time(value: Any) -> dt.datetime | None:
    """A restore point: None, Unix seconds (number or numeric string, 0 to the end of
    the year 9999) or ISO 8601 text (naive = local time)."""
    if value is None or value == "":
        return None
    wrong = f"'at' must be a Unix time or an ISO 8601 date, not {_shown(value)}"
    if isinstance(value, bool):
        raise UsageError(wrong)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise UsageError(wrong) from None
    if not isinstance(value, int | float):
        raise UsageError(wrong)
    if not 0 <= value <= MAX_UNIX_TIME:  # False for NaN too
        raise UsageError(
            f"'at' must be a Unix time from 0 to {MAX_UNIX_TIME} (the end of the year 9999), "
            f"not {_shown(value)}"
        )
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _user_path(raw: str) -> Path:
    """A folder path from a request: ``~`` expanded; must then be absolute (checked by
    ``edits``) because the daemon's working directory means nothing to the caller."""
    return Path(raw).expanduser()


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _versioner_module() -> Any:
    try:
        from ..sync import versioner
    except ImportError as exc:
        raise HTTPException(501, f"file versioning is not available in this build ({exc})") from exc
    if not (hasattr(versioner, "list_versions") and hasattr(versioner, "restore")):
        raise HTTPException(501, "file versioning is not available in this build (no list/restore)")
    return versioner


# ---- the app -----------------------------------------------------------------------


async def _p2psync_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, P2PSyncError)
    return _error(status_for(exc), str(exc), type(exc).__name__)


async def _value_error(request: Request, exc: Exception) -> JSONResponse:
    return _error(400, str(exc), "UsageError")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = _error(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers)  # e.g. Allow on a 405
    return response


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("API %s %s failed", request.method, request.path, exc_info=exc)
    return _error(500, f"internal error: {type(exc).__name__}")


# Adds the web interface: (its routes, the guard for the whole app) from the handlers,
# the API key, the API's guard and the bound address (``p2psync.web.mount``).
WebMount = Callable[[_Api, str, Guard, Callable[[], str | None]], tuple[list[Route], Any]]


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
    api = _Api(node)
    bound = get_bound or (lambda: node.api_address)
    p = "/api"
    routes = [
        Route(f"{p}/openapi.json", api.openapi),
        Route(f"{p}/system", api.system),
        Route(f"{p}/config/reload", api.reload, methods=["POST"]),
        Route(f"{p}/config/relays", api.relays_set, methods=["POST"]),
        Route(f"{p}/config", api.config, methods=["GET"]),
        Route(f"{p}/events", api.events),
        Route(f"{p}/folders", api.folders),
        Route(f"{p}/folders", api.folder_add, methods=["POST"]),
        Route(f"{p}/folders/{{id}}", api.folder),
        Route(f"{p}/folders/{{id}}", api.folder_remove, methods=["DELETE"]),
        Route(f"{p}/folders/{{id}}/share", api.folder_share, methods=["POST"]),
        Route(f"{p}/folders/{{id}}/pause", api._pause(True), methods=["POST"]),
        Route(f"{p}/folders/{{id}}/resume", api._pause(False), methods=["POST"]),
        Route(f"{p}/folders/{{id}}/scan", api.folder_scan, methods=["POST"]),
        Route(f"{p}/folders/{{id}}/override", api.folder_override, methods=["POST"]),
        Route(f"{p}/folders/{{id}}/revert", api.folder_revert, methods=["POST"]),
        Route(f"{p}/folders/{{id}}/confirm-deletes", api.folder_confirm_deletes, methods=["POST"]),
        Route(f"{p}/folders/{{id}}/conflicts", api.conflicts),
        Route(f"{p}/folders/{{id}}/completion", api.completion),
        Route(f"{p}/folders/{{id}}/versions", api.versions),
        Route(f"{p}/folders/{{id}}/versions/restore", api.versions_restore, methods=["POST"]),
        Route(f"{p}/devices", api.devices),
        Route(f"{p}/devices", api.device_add, methods=["POST"]),
        Route(f"{p}/devices/{{id}}", api.device_remove, methods=["DELETE"]),
        Route(f"{p}/devices/{{id}}/pause", api._pause_device(True), methods=["POST"]),
        Route(f"{p}/devices/{{id}}/resume", api._pause_device(False), methods=["POST"]),
        Route(f"{p}/discovered", api.discovered),
        Route(f"{p}/pending/devices", api.pending_devices),
        Route(f"{p}/pending/devices/{{id}}/accept", api.pending_device_accept, methods=["POST"]),
        Route(f"{p}/pending/devices/{{id}}/reject", api.pending_device_reject, methods=["POST"]),
        Route(f"{p}/pending/folders", api.pending_folders),
        Route(f"{p}/pending/folders/{{id}}/accept", api.pending_folder_accept, methods=["POST"]),
        Route(f"{p}/pending/folders/{{id}}/reject", api.pending_folder_reject, methods=["POST"]),
        *settings_routes(node, api._change, _body, JSONResponse),
        *selection_routes(node, api._change, _body, JSONResponse),
        *link_routes(node, _body, JSONResponse),
        *history_routes(node, JSONResponse, api.list_versions),
    ]
    guard: Any = Guard(key=key, get_hosts=lambda: allowed_hosts(bound()))
    if web is not None:  # the web interface, on the same address (DESIGN §11)
        web_routes, guard = web(api, key, guard, bound)
        routes += web_routes
    return App(
        routes,
        exception_handlers={
            P2PSyncError: _p2psync_error,
            ValueError: _value_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        guard=guard,
    )
