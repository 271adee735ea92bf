"""The control API's change history (issue 24.2; the log itself: ``p2psync/history``).

``GET /api/history?[folder=F][&path=P][&since=UNIX][&device=ID|NAME][&kind=K[,K…]]
[&q=TEXT][&before=ID][&limit=N]``: newest first; without ``folder``, every folder's. With
``path`` (a file or a directory: what is under it too), the answer also lists the
versions of it that can still be restored. ``read_history`` is the service the web
interface's history pages call too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ..config import Config
from ..errors import UsageError
from ..history.changes import Change, Kind
from ..identity import DeviceID
from ..protocol.names import validate_name
from .http import HTTPException, Request, Response, Route

if TYPE_CHECKING:
    from ..history.log import HistoryLog
    from .registry import RunningNode

MAX_LIMIT = 10_000
MAX_SEARCH = 200  # characters of a name search
ListVersions = Callable[[str, str | None], Awaitable[list[Any]]]
# "renamed" stands for both halves of a rename
KIND_GROUPS = {"renamed": (Kind.RENAMED_FROM, Kind.RENAMED_TO)}


@dataclass(frozen=True)
class HistoryQuery:
    """What to read from the log: ``folder`` None for every configured folder."""

    folder: str | None = None
    path: str | None = None
    since: float | None = None  # Unix seconds
    device: str | None = None  # an ID or a configured name
    kinds: tuple[Kind, ...] | None = None
    contains: str | None = None
    before: int | None = None  # a row ID: the page after the one that ended there
    limit: int = 1000


def parse_query(q: Mapping[str, str]) -> HistoryQuery:
    """The query of ``GET /api/history``'s parameters; UsageError names a bad one."""
    path = (q.get("path") or "").strip("/") or None
    if path is not None:
        validate_name(path)
    since = _number(q.get("since"), "since")
    before = _number(q.get("before"), "before")
    raw_limit = _number(q.get("limit"), "limit")
    limit = 1000 if raw_limit is None else int(raw_limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be 1..{MAX_LIMIT}")
    contains = q.get("q") or None
    if contains is not None and len(contains) > MAX_SEARCH:
        raise UsageError(f"the name search is longer than {MAX_SEARCH} characters")
    return HistoryQuery(
        folder=q.get("folder") or None,
        path=path,
        since=since,
        device=q.get("device") or None,
        kinds=kinds_of(q.get("kind") or ""),
        contains=contains,
        before=int(before) if before is not None else None,
        limit=limit,
    )


def kinds_of(text: str) -> tuple[Kind, ...] | None:
    """``created,renamed`` -> the kinds (None: all); UsageError for an unknown one."""
    out: list[Kind] = []
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        if word in KIND_GROUPS:
            out += KIND_GROUPS[word]
            continue
        try:
            out.append(Kind(word))
        except ValueError:
            known = ", ".join([*(str(k) for k in Kind), *KIND_GROUPS])
            raise UsageError(f"no kind of change {word[:40]!r} (known: {known})") from None
    return tuple(out) or None


def search(
    log: HistoryLog, folders: list[str], query: HistoryQuery, devices: list[int] | None
) -> list[tuple[int, Change]]:
    """The log's rows for ``query`` in ``folders`` (blocking): the API and the offline
    command read the log the same way."""
    return log.search(
        folders,
        name=query.path,
        contains=query.contains,
        since_ns=int(query.since * 1e9) if query.since is not None else None,
        devices=devices,
        kinds=query.kinds,
        before_id=query.before,
        limit=query.limit,
    )


async def read_history(
    node: RunningNode, query: HistoryQuery, list_versions: ListVersions
) -> dict[str, Any]:
    """``GET /api/history``'s answer: 404 for an unknown folder, 503 when the log is off."""
    service = node.history
    if service is None or service.log is None:
        why = (service.off_reason if service else "") or "see the daemon's log"
        raise HTTPException(503, f"the change history is off on this node ({why})")
    history_log = service.log
    if query.folder is not None and node.config.folder(query.folder) is None:
        raise HTTPException(404, f"no folder {query.folder!r}")
    if query.path is not None:
        if query.folder is None:
            raise UsageError("a path needs its folder")
        validate_name(query.path)  # also for callers that built the query themselves
    folders = [query.folder] if query.folder else [fc.id for fc in node.config.folders]
    names = device_names(node.config, node.device_id)
    devices = [short_of(names, query.device)] if query.device else None
    rows = await trio.to_thread.run_sync(search, history_log, folders, query, devices)
    out: dict[str, Any] = {
        "folder": query.folder,
        "path": query.path,
        "entries": [{"id": i, **entry_view(c, names)} for i, c in rows],
        "recorder": {
            "written": service.stats.written,
            "dropped": service.stats.dropped,
            "last_error": service.stats.last_error,
        },
    }
    if query.path is not None and query.folder is not None:
        try:
            found = await list_versions(query.folder, query.path)
        except (HTTPException, UsageError):
            found = []  # no versioning on this folder, or it is not running
        out["versions"] = [
            {
                "name": v.name,
                "time": v.version_time.isoformat(),
                "timestamp": v.timestamp,
                "size": v.size,
            }
            for v in found
        ]
    return out


def history_routes(
    node: RunningNode, json_response: type[Response], list_versions: ListVersions
) -> list[Route]:
    async def history(request: Request) -> Response:
        query = parse_query(request.query_params)
        return json_response(await read_history(node, query, list_versions))

    return [Route("/api/history", history)]


def entry_view(c: Change, names: dict[int, tuple[str, str]]) -> dict[str, Any]:
    device_id, device_name = names.get(c.device_short, ("", ""))
    return {
        "time": _iso(c.at_ns),
        "at_ns": c.at_ns,
        "folder": c.folder,
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
        out[dc.id.short_id] = (str(dc.id), dc.name)
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
