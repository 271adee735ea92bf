"""The control API's change history (issue 24.2; the log itself: ``p2psync/history``).

``GET /api/history?folder=F[&path=P][&since=UNIX][&device=ID|NAME][&limit=N]``: newest
first. With ``path`` (a file or a directory: what is under it too), the answer also lists
the versions of it that can still be restored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ..config import Config
from ..errors import UsageError
from ..history.changes import Change
from ..identity import DeviceID
from ..protocol.names import validate_name
from .http import HTTPException, Request, Response, Route

if TYPE_CHECKING:
    from .registry import RunningNode

MAX_LIMIT = 10_000
ListVersions = Callable[[str, str | None], Awaitable[list[Any]]]


def history_routes(
    node: RunningNode, json_response: type[Response], list_versions: ListVersions
) -> list[Route]:
    async def history(request: Request) -> Response:
        service = node.history
        if service is None or service.log is None:
            why = (service.off_reason if service else "") or "see the daemon's log"
            raise HTTPException(503, f"the change history is off on this node ({why})")
        history_log = service.log
        q = request.query_params
        folder = q.get("folder") or ""
        if node.config.folder(folder) is None:
            raise HTTPException(404, f"no folder {folder!r}")
        path = (q.get("path") or "").strip("/") or None
        if path is not None:
            validate_name(path)
        since = _number(q.get("since"), "since")
        limit = int(_number(q.get("limit"), "limit") or 1000)
        if not 1 <= limit <= MAX_LIMIT:
            raise UsageError(f"limit must be 1..{MAX_LIMIT}")
        names = device_names(node.config, node.device_id)
        devices = None
        if q.get("device"):
            devices = [short_of(names, q["device"])]
        rows = await trio.to_thread.run_sync(
            lambda: history_log.query(
                folder,
                name=path,
                since_ns=int(since * 1e9) if since is not None else None,
                devices=devices,
                limit=limit,
            )
        )
        out: dict[str, Any] = {
            "folder": folder,
            "path": path,
            "entries": [entry_view(c, names) for c in rows],
            "recorder": {
                "written": service.stats.written,
                "dropped": service.stats.dropped,
                "last_error": service.stats.last_error,
            },
        }
        if path is not None:
            try:
                found = await list_versions(folder, path)
            except (HTTPException, UsageError):
                found = []  # no versioning on this folder
            out["versions"] = [
                {"name": v.name, "time": v.version_time.isoformat(), "size": v.size} for v in found
            ]
        return json_response(out)

    return [Route("/api/history", history)]


def entry_view(c: Change, names: dict[int, tuple[str, str]]) -> dict[str, Any]:
    device_id, device_name = names.get(c.device_short, ("", ""))
    return {
        "time": _iso(c.at_ns),
        "at_ns": c.at_ns,
        "path": c.name,
        "kind": str(c.kind),
        "origin": str(c.origin),
        "device": device_id or f"{c.device_short:016X}",
        "device_name": device_name,
        "type": ("file", "directory", "", "", "symlink")[c.item_type]
        if 0 <= c.item_type <= 4
        else str(c.item_type),
        "size": c.size,
        "modified": _iso(c.modified_ns) if c.modified_ns else None,
        "hash": c.content_hash.hex(),
        "detail": c.detail,
    }


def device_names(config: Config, own: DeviceID) -> dict[int, tuple[str, str]]:
    """Short ID -> (device ID, name), for this device and every configured one."""
    out = {own.short_id: (str(own), config.name + " (this device)")}
    for dc in config.devices:
        try:
            did = DeviceID.parse(dc.id)
        except ValueError:
            continue
        out[did.short_id] = (str(did), dc.name)
    return out


def short_of(names: dict[int, tuple[str, str]], text: str) -> int:
    """The short ID of the device named ``text`` (its ID or configured name)."""
    for short, (device_id, name) in names.items():
        if text in (device_id, name, name.removesuffix(" (this device)")):
            return short
    try:
        return DeviceID.parse(text).short_id
    except ValueError:
        raise UsageError(f"no device {text!r} (give a device ID or a configured name)") from None


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, not {raw[:40]!r}") from None
    if not 0 <= value < 1e12:
        raise UsageError(f"{name} is out of range")
    return value


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds")
