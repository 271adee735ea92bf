"""What each page shows, gathered from the API's views and services, as template sections.

A view (overview, folder, events) is a set of named sections; a page embeds them and its
live poll re-renders the view and swaps in only the sections whose HTML changed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..api import edits
from ..api.changes import conflict_pairs, recent_changes
from ..api.handlers import Handlers
from ..api.registry import RunningNode
from ..api.views import device_view, folder_view, system_view
from ..errors import P2PSyncError
from ..events import EventLog
from ..identity import DeviceID
from .render import fragment, qr_svg

# view -> the query parameters that select what it shows
VIEWS: dict[str, tuple[str, ...]] = {"overview": (), "folder": ("id",), "events": ("types",)}
SECTIONS = {
    "overview": ("system", "pending", "folders", "devices", "share_choices"),
    "folder": ("folder_detail",),
    "events": ("event_list",),
}
CHANGE_EVENTS = {"LocalIndexUpdated", "RemoteIndexUpdated", "ItemFinished"}
MAX_EVENTS_SHOWN = 200
MAX_VERSIONS_SHOWN = 200


async def render_view(
    api: Handlers, view: str, params: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the template context, each section's HTML) for ``view``."""
    if view == "folder":
        ctx = await folder_context(api, params.get("id", ""))
    elif view == "events":
        ctx = events_context(api.node, params.get("types", ""))
    else:
        ctx = await overview_context(api)
    return ctx, {name: fragment(f"_{name}.html", **ctx) for name in SECTIONS[view]}


def view_of(url: str) -> tuple[str, dict[str, str]]:
    """The view and its parameters for a page URL (htmx sends it as HX-Current-URL)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    path = parts.path
    if path.startswith("/folders/") and path.count("/") == 2:
        return "folder", {"id": unquote(path.rpartition("/")[2])}
    if path == "/events":
        return "events", {"types": query.get("types", "")}
    return "overview", {}


def device_names(node: RunningNode) -> dict[int, str]:
    """Short device ID (an index entry's ``modified_by``) -> name, this device included."""
    names = {node.device_id.short_id: f"{node.config.name or 'this device'} (this device)"}
    for d in node.config.devices:
        names[DeviceID.parse(d.id).short_id] = d.name or d.id[:7]
    return names


async def overview_context(api: Handlers) -> dict[str, Any]:
    node = api.node
    system = system_view(node)
    folders = [await folder_view(node, fc, api.limiter) for fc in node.config.folders]
    last = last_changes(node.events)
    for f in folders:
        f["last_change"] = last.get(f["id"])
    devices = [device_view(node, d, api.meter) for d in node.config.devices]
    pending_devices = await api._thread(node.pending.devices)
    pending_folders = await api._thread(node.pending.folders)
    names = {d["id"]: d["name"] for d in devices}
    return {
        "system": system,
        "qr": qr_svg(system["device_id"]),
        "folders": folders,
        "devices": devices,
        "pending_devices": pending_devices,
        "pending_folders": [
            {
                "entry": p,
                "from_name": names.get(p.device_id, ""),
                "default_path": default_path(node, p.folder_id),
                "existing": node.config.folder(p.folder_id),
            }
            for p in pending_folders
        ],
    }


async def folder_context(api: Handlers, folder_id: str) -> dict[str, Any]:
    node = api.node
    fc = node.config.folder(folder_id)
    if fc is None:
        return {"folder": None, "folder_id": folder_id, "system": system_view(node)}
    view = await folder_view(node, fc, api.limiter)
    names = device_names(node)
    running = node.model.folders.get(fc.id) is not None
    recent: list[Any] = []
    conflicts: list[Any] = []
    versions: list[Any] = []
    versions_error = ""
    if running:
        recent = await api._thread(recent_changes, node.index, fc.id, names)
        conflicts = await api._thread(conflict_pairs, node.index, fc.id, names)
        try:
            versions = (await api.list_versions(fc.id, None))[-MAX_VERSIONS_SHOWN:][::-1]
        except P2PSyncError as exc:
            versions_error = str(exc)
        except Exception as exc:  # e.g. versioning not in this build: say so in place
            versions_error = str(exc)
    return {
        "folder": view,
        "folder_id": fc.id,
        "config": fc,
        "running": running,
        "recent": recent,
        "conflicts": conflicts,
        "versions": versions,
        "versions_error": versions_error,
        "system": system_view(node),
    }


def events_context(node: RunningNode, types: str) -> dict[str, Any]:
    wanted = {t for t in types.split(",") if t} or None
    found = node.events.since(0, wanted, limit=1 << 30)[-MAX_EVENTS_SHOWN:][::-1]
    names = {d.id: d.name for d in node.config.devices if d.name}
    return {
        "events": [
            {**e.to_json(), "device_name": names.get(str(e.data.get("device")), "")} for e in found
        ],
        "types": types,
        "known_types": sorted({e.type for e in node.events.since(0, None, limit=1 << 30)}),
        "system": system_view(node),
    }


def last_changes(events: EventLog) -> dict[str, float]:
    """Each folder's last change (Unix time) still in the event log."""
    last: dict[str, float] = {}
    for e in events.since(0, CHANGE_EVENTS, limit=1 << 30):
        folder = e.data.get("folder")
        if isinstance(folder, str):
            last[folder] = e.time
    return last


def default_path(node: RunningNode, folder_id: str) -> str:
    """Where accepting ``folder_id`` puts it unless the user says otherwise (a folder
    with that ID here: its own path, since the offer merges into it)."""
    existing = node.config.folder(folder_id)
    if existing is not None:
        return str(existing.resolved_path.absolute())
    try:
        return str(edits.default_accept_path(node.config, folder_id, node.home))
    except P2PSyncError:
        return ""
