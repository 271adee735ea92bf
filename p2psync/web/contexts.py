"""What each page shows, gathered from the API's views and services, as template sections.

A view (overview, folder, events, history, file_history, links, link) is a set of named
sections; a page embeds them and its live poll re-renders the view and swaps in only the
sections whose HTML changed.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..api import edits
from ..api.changes import conflict_pairs
from ..api.handlers import Handlers
from ..api.history import HistoryQuery, read_history
from ..api.history import device_names as history_device_names
from ..api.http import HTTPException
from ..api.registry import RunningNode
from ..api.views import device_view, folder_view, system_view
from ..errors import P2PSyncError
from ..events import EventLog
from . import history_view as hv
from . import links_view as lv
from .render import fragment, qr_svg

# view -> the query parameters that select what it shows
VIEWS: dict[str, tuple[str, ...]] = {
    "overview": (),
    "folder": ("id",),
    "events": ("types",),
    "history": ("folder", "device", "since", "kind", "q", "before"),
    "file_history": ("folder", "path"),
    "links": (),
    "link": ("id",),
}
SECTIONS = {
    "overview": ("system", "pending", "folders", "devices", "share_choices"),
    "folder": ("folder_detail",),
    "events": ("event_list",),
    "history": ("history_list",),
    "file_history": ("file_history",),
    "links": ("link_list",),
    "link": ("link_detail",),
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
    elif view == "history":
        ctx = await history_context(api, params)
    elif view == "file_history":
        ctx = await file_history_context(api, params.get("folder", ""), params.get("path", ""))
    elif view == "links":
        ctx = await links_context(api.node)
    elif view == "link":
        ctx = await link_context(api.node, params.get("id", ""))
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
    if path == "/ui/history":
        return "history", {k: query.get(k, "") for k in VIEWS["history"]}
    if path.startswith("/ui/history/") and path.count("/") >= 4:
        folder, _, name = path.removeprefix("/ui/history/").partition("/")
        return "file_history", {"folder": unquote(folder), "path": unquote(name)}
    if path == "/ui/links":
        return "links", {}
    if path.startswith("/ui/links/") and path.count("/") == 3:
        return "link", {"id": unquote(path.rpartition("/")[2])}
    return "overview", {}


def device_names(node: RunningNode) -> dict[int, str]:
    """Short device ID (an index entry's ``modified_by``) -> name, this device included."""
    names = {node.device_id.short_id: f"{node.config.name or 'this device'} (this device)"}
    for d in node.config.devices:
        names[d.id.short_id] = d.name or d.id.short_str()
    return names


async def overview_context(api: Handlers) -> dict[str, Any]:
    node = api.node
    system = system_view(node)
    folders = [await folder_view(node, fc, api.ctx.limiter) for fc in node.config.folders]
    last = last_changes(node.events)
    for f in folders:
        f["last_change"] = last.get(f["id"])
    devices = [device_view(node, d, api.ctx.meter) for d in node.config.devices]
    pending_devices = await api.ctx.thread(node.pending.devices)
    pending_folders = await api.ctx.thread(node.pending.folders)
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
    view = await folder_view(node, fc, api.ctx.limiter)
    names = device_names(node)
    running = node.model.folders.get(fc.id) is not None
    conflicts: list[Any] = []
    versions: list[Any] = []
    versions_error = ""
    recent, recent_error = await recent_history(api, fc.id)
    if running:
        conflicts = await api.ctx.thread(conflict_pairs, node.index, fc.id, names)
        try:
            versions = (await api.versions.list_versions(fc.id, None))[-MAX_VERSIONS_SHOWN:][::-1]
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
        "recent_error": recent_error,
        "history_url": hv.filtered_url(folder=fc.id),
        "conflicts": conflicts,
        "versions": versions,
        "versions_error": versions_error,
        "system": system_view(node),
    }


def events_context(node: RunningNode, types: str) -> dict[str, Any]:
    wanted = {t for t in types.split(",") if t} or None
    found = node.events.since(0, wanted, limit=1 << 30)[-MAX_EVENTS_SHOWN:][::-1]
    names = {str(d.id): d.name for d in node.config.devices if d.name}
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


async def recent_history(api: Handlers, folder_id: str) -> tuple[list[dict[str, Any]], str]:
    """The folder page's "recent changes": its last entries in the history, or why not."""
    query = HistoryQuery(folder=folder_id, limit=hv.RECENT_ROWS)
    try:
        data = await read_history(api.node, query, api.versions.list_versions)
    except (P2PSyncError, HTTPException) as exc:
        return [], _why(exc)
    return hv.history_rows(data["entries"], {}), ""


async def history_context(api: Handlers, params: dict[str, str]) -> dict[str, Any]:
    """The history page: a page of every folder's changes (or one's), filtered."""
    node = api.node
    f = hv.filters_from(params)
    labels = {fc.id: fc.label or fc.id for fc in node.config.folders}
    names = history_device_names(node.config, node.device_id)
    ctx: dict[str, Any] = {
        "filters": f,
        "folders": sorted(labels.items(), key=lambda kv: kv[1].lower()),
        "devices": sorted(names.values(), key=lambda idn: idn[1].lower()),
        "spans": hv.SPANS,
        "kinds": hv.KIND_CHOICES,
        "rows": [],
        "older": "",
        "newest": hv.filtered_url(**{**f.params(), "before": ""}) if f.before else "",
        "error": "",
        "system": system_view(node),
    }
    try:
        data = await read_history(node, hv.to_query(f, time.time()), api.versions.list_versions)
    except (P2PSyncError, HTTPException) as exc:
        ctx["error"] = _why(exc)
        return ctx
    shown, ctx["older"] = hv.page_of(data["entries"], f)
    ctx["rows"] = hv.history_rows(shown, labels)
    return ctx


async def file_history_context(api: Handlers, folder_id: str, path: str) -> dict[str, Any]:
    """One file's changes, newest first, and the versions of it that can be restored."""
    node = api.node
    fc = node.config.folder(folder_id)
    ctx: dict[str, Any] = {
        "folder_id": folder_id,
        "folder_label": (fc.label or fc.id) if fc else folder_id,
        "path": path,
        "rows": [],
        "more": False,
        "versions": [],
        "running": fc is not None and node.model.folders.get(fc.id) is not None,
        "history_url": hv.filtered_url(folder=folder_id),
        "error": "",
        "system": system_view(node),
    }
    query = HistoryQuery(folder=folder_id, path=path, limit=hv.PAGE_ROWS + 1)
    try:
        data = await read_history(node, query, api.versions.list_versions)
    except (P2PSyncError, HTTPException) as exc:
        ctx["error"] = _why(exc)
        return ctx
    entries = data["entries"]
    ctx["rows"] = hv.history_rows(entries[: hv.PAGE_ROWS], {})
    ctx["more"] = len(entries) > hv.PAGE_ROWS
    ctx["versions"] = hv.version_rows(data.get("versions") or [])
    return ctx


async def links_context(node: RunningNode) -> dict[str, Any]:
    """The share links page: the listener and every link, newest first."""
    ctx: dict[str, Any] = {
        "links": [],
        "listener": lv.listener_notice({}),
        "folders": [(fc.id, fc.label or fc.id) for fc in node.config.folders],
        "expiries": lv.EXPIRIES,
        "default_expiry": lv.DEFAULT_EXPIRY,
        "error": "",
        "system": system_view(node),
    }
    links = node.links
    if links is None:
        ctx["error"] = "Share links are not available on this node (see the daemon's log)."
        return ctx
    try:
        data = await links.links(downloads=1)
    except P2PSyncError as exc:
        ctx["error"] = str(exc)
        return ctx
    ctx["links"] = lv.link_rows(data["links"], time.time())
    ctx["listener"] = lv.listener_notice(data["listener"])
    return ctx


async def link_context(node: RunningNode, link_id: str) -> dict[str, Any]:
    """One link and its download log."""
    ctx: dict[str, Any] = {"link_id": link_id, "link": None, "downloads": [], "error": ""}
    ctx["system"] = system_view(node)
    links = node.links
    if links is None:
        ctx["error"] = "Share links are not available on this node (see the daemon's log)."
        return ctx
    try:
        data = await links.links(downloads=0)
        rows = await links.store_call("downloads", link_id, lv.MAX_DOWNLOADS_SHOWN)
    except P2PSyncError as exc:
        ctx["error"] = str(exc)
        return ctx
    found = [link for link in data["links"] if link["id"] == link_id]
    if not found:
        ctx["error"] = f"There is no link {link_id!r}."
        return ctx
    ctx["link"] = lv.link_row(found[0], time.time())
    ctx["downloads"] = lv.download_rows([row.__dict__ for row in rows])
    return ctx


def _why(exc: Exception) -> str:
    return str(exc.detail) if isinstance(exc, HTTPException) else str(exc)
