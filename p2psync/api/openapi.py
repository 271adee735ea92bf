"""The hand-written OpenAPI 3.1 description of the control API (served at /api/openapi.json)."""

from __future__ import annotations

import re
from typing import Any

from .. import __version__

# (method, path, summary, query parameters, JSON body properties)
_ENDPOINTS: list[tuple[str, str, str, tuple[str, ...], tuple[str, ...]]] = [
    ("get", "/api/system", "Device ID, name, version, uptime, listen and API addresses", (), ()),
    ("get", "/api/openapi.json", "This document", (), ()),
    ("post", "/api/config/reload", "Re-read config.toml and apply it without a restart", (), ()),
    (
        "post",
        "/api/config/relays",
        "Set the relays to join (relay://HOST:PORT/?id=RELAY-ID); joins and leaves at once",
        (),
        ("relays",),
    ),
    (
        "get",
        "/api/config",
        "The config in use (the last good one while config.toml is invalid) and the error",
        (),
        (),
    ),
    (
        "get",
        "/api/events",
        "Long-poll events after `since` (timeout <= 60 s)",
        ("since", "timeout", "types", "limit"),
        (),
    ),
    (
        "get",
        "/api/folders",
        "Every folder: state, global/local/need counts, errors, devices",
        (),
        (),
    ),
    ("post", "/api/folders", "Add a folder", (), ("path", "id", "label", "type", "devices")),
    ("get", "/api/folders/{id}", "One folder's status", (), ()),
    ("delete", "/api/folders/{id}", "Stop syncing a folder (files stay on disk)", (), ()),
    ("post", "/api/folders/{id}/share", "Share a folder with a configured device", (), ("device",)),
    ("post", "/api/folders/{id}/pause", "Pause a folder", (), ()),
    ("post", "/api/folders/{id}/resume", "Resume a folder", (), ()),
    (
        "post",
        "/api/folders/{id}/scan",
        "Scan now (all, or the given folder-relative paths)",
        (),
        ("paths",),
    ),
    ("post", "/api/folders/{id}/override", "Send-only: make the cluster match this device", (), ()),
    ("post", "/api/folders/{id}/revert", "Receive-only: drop local changes", (), ()),
    (
        "post",
        "/api/folders/{id}/confirm-deletes",
        "Allow a mass delete that paused the folder",
        (),
        (),
    ),
    ("get", "/api/folders/{id}/conflicts", "Conflict copies in the folder", (), ()),
    (
        "get",
        "/api/folders/{id}/completion",
        "How much of the folder a device (default: this one) has, by bytes",
        ("device",),
        (),
    ),
    ("get", "/api/folders/{id}/versions", "Archived versions (of one path, or all)", ("path",), ()),
    (
        "post",
        "/api/folders/{id}/versions/restore",
        "Restore an archived version",
        (),
        ("path", "at"),
    ),
    ("get", "/api/devices", "Configured devices with connection, bytes and rates", (), ()),
    (
        "post",
        "/api/devices",
        "Trust a device (add or update)",
        (),
        ("id", "name", "addresses", "introducer"),
    ),
    ("delete", "/api/devices/{id}", "Stop trusting a device", (), ()),
    ("post", "/api/devices/{id}/pause", "Pause a device (disconnects it)", (), ()),
    ("post", "/api/devices/{id}/resume", "Resume a device", (), ()),
    ("get", "/api/discovered", "Unknown devices seen on the LAN (mDNS)", (), ()),
    ("get", "/api/pending/devices", "Devices that tried to connect but are not trusted", (), ()),
    ("post", "/api/pending/devices/{id}/accept", "Trust a pending device", (), ("name",)),
    ("post", "/api/pending/devices/{id}/reject", "Forget a pending device", (), ()),
    ("get", "/api/pending/folders", "Folders offered by trusted devices", (), ()),
    (
        "post",
        "/api/pending/folders/{id}/accept",
        "Accept a pending folder",
        (),
        ("path", "type"),
    ),
    ("post", "/api/pending/folders/{id}/reject", "Forget a pending folder offer", (), ()),
    ("get", "/api/settings", "This device's settings, as in config.toml", (), ()),
    (
        "patch",
        "/api/settings",
        "Change settings: {set: {key: value}, add/remove: {key: [values]}}",
        (),
        ("set", "add", "remove"),
    ),
    (
        "get",
        "/api/folders/{id}/selection",
        "Selective sync: the paths kept here, what is left out (items, bytes), what stays",
        (),
        (),
    ),
    (
        "put",
        "/api/folders/{id}/selection",
        "Set the paths kept here ([] = the whole folder)",
        (),
        ("selected",),
    ),
    (
        "post",
        "/api/folders/{id}/selection/select",
        "Keep these paths too (from the whole folder: only these)",
        (),
        ("paths",),
    ),
    (
        "post",
        "/api/folders/{id}/selection/unselect",
        "Stop keeping these paths (in-sync copies go; local changes stay)",
        (),
        ("paths",),
    ),
    ("get", "/api/folders/{id}/settings", "A folder's settings", (), ()),
    (
        "patch",
        "/api/folders/{id}/settings",
        "Change a folder's settings",
        (),
        ("set", "add", "remove"),
    ),
    ("get", "/api/devices/{id}/settings", "A device's settings", (), ()),
    (
        "patch",
        "/api/devices/{id}/settings",
        "Change a device's settings",
        (),
        ("set", "add", "remove"),
    ),
    (
        "post",
        "/api/web/signin-link",
        "A one-time sign-in link for the web interface (`p2psync open`)",
        (),
        (),
    ),
    ("get", "/api/links", "Share links: the listener, each link, its recent downloads", (), ()),
    (
        "post",
        "/api/links",
        "Create a share link (starts the link listener); docs/links.md",
        (),
        ("folder", "path", "expires_in", "password", "max_downloads", "listen", "public_url"),
    ),
    ("post", "/api/links/{id}/revoke", "Revoke a share link (410 Gone from now on)", (), ()),
    ("get", "/api/links/{id}/downloads", "A share link's download log, newest first", (), ()),
    (
        "get",
        "/api/history",
        "Who changed what, when: the change log (a folder's or all), newest first",
        ("folder", "path", "since", "device", "kind", "q", "before", "limit"),
        (),
    ),
]

_ARRAYS = {"devices", "addresses", "paths"}
_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _operation(
    method: str, path: str, summary: str, query: tuple[str, ...], body: tuple[str, ...]
) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    if "{id}" in path:
        params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
    params += [
        {"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query
    ]
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": method
        + "_"
        + re.sub(r"[^a-z0-9]+", "_", path.removeprefix("/api/")).strip("_"),
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
            "400": _ERROR,
            "401": _ERROR,
            "403": _ERROR,
            "404": _ERROR,
            "409": _ERROR,
        },
    }
    if body:
        props = {
            b: ({"type": "array", "items": {"type": "string"}} if b in _ARRAYS else {})
            for b in body
        }
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object", "properties": props}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, query, body in _ENDPOINTS:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, query, body)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "p2psync control API",
            "version": __version__,
            "description": "Local JSON API of the p2psync daemon; see docs/api.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8385"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "kind": {"type": "string"}},
                },
            },
        },
        "paths": paths,
    }


def documented_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every documented endpoint, for tests that compare with the app."""
    return {(m.upper(), p) for m, p, *_ in _ENDPOINTS}
