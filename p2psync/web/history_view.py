"""The history pages' context, pure: the page's filters to an API query, the API's
entries (``GET /api/history``) to table rows, and the links between pages.

``now`` is passed in; nothing here reads the clock, the log or the config.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ..api.history import HistoryQuery, kinds_of
from ..errors import UsageError

PAGE_ROWS = 200  # never more rows than this on one page
RECENT_ROWS = 10  # the folder page's "recent changes" box
# the "since" choices, as (value, label, seconds; None: no limit)
SPANS: tuple[tuple[str, str, float | None], ...] = (
    ("1h", "the last hour", 3600.0),
    ("1d", "the last day", 86_400.0),
    ("7d", "the last 7 days", 7 * 86_400.0),
    ("30d", "the last 30 days", 30 * 86_400.0),
    ("all", "all time", None),
)
KIND_CHOICES = (
    "created",
    "modified",
    "deleted",
    "renamed",
    "conflict copy made",
    "restored",
    "refused",
)
NO_SIZE_KINDS = frozenset({"deleted", "renamed from"})


@dataclass(frozen=True)
class HistoryFilters:
    """The history page's query string: each field "" when not set."""

    folder: str = ""
    device: str = ""
    since: str = "all"
    kind: str = ""
    q: str = ""
    before: str = ""

    def params(self) -> dict[str, str]:
        """The query string that gives these filters again (defaults left out)."""
        return {k: v for k, v in asdict(self).items() if v and not (k == "since" and v == "all")}


def filters_from(params: Mapping[str, str]) -> HistoryFilters:
    """The page's filters as given (validated later, by ``to_query``)."""
    return HistoryFilters(
        folder=params.get("folder", "").strip(),
        device=params.get("device", "").strip(),
        since=params.get("since", "").strip() or "all",
        kind=params.get("kind", "").strip(),
        q=params.get("q", "").strip(),
        before=params.get("before", "").strip(),
    )


def to_query(f: HistoryFilters, now: float) -> HistoryQuery:
    """The API query for a page of ``f`` (one row more than shown: is there an older page?);
    UsageError names a filter that makes no sense."""
    spans = {value: seconds for value, _, seconds in SPANS}
    if f.since not in spans:
        raise UsageError(f"'since' must be one of {', '.join(spans)}, not {f.since[:20]!r}")
    if f.kind and f.kind not in KIND_CHOICES:
        raise UsageError(f"no kind of change {f.kind[:40]!r}")
    if f.before and not f.before.isdigit():
        raise UsageError(f"'before' must be an entry number, not {f.before[:20]!r}")
    span = spans[f.since]
    return HistoryQuery(
        folder=f.folder or None,
        since=None if span is None else now - span,
        device=f.device or None,
        kinds=kinds_of(f.kind),
        contains=f.q or None,
        before=int(f.before) if f.before else None,
        limit=PAGE_ROWS + 1,
    )


def file_url(folder: str, path: str) -> str:
    """The file history page of ``path`` in ``folder``."""
    return f"/ui/history/{quote(folder, safe='')}/{quote(path, safe='/')}"


def history_rows(
    entries: Sequence[Mapping[str, Any]], folder_labels: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Table rows for ``GET /api/history`` entries, in the order given."""
    return [history_row(e, folder_labels) for e in entries]


def history_row(e: Mapping[str, Any], folder_labels: Mapping[str, str]) -> dict[str, Any]:
    kind = str(e["kind"])
    name = str(e["path"])
    detail = str(e.get("detail") or "")
    if kind == "renamed from":
        shown_kind, rename = "renamed", (name, detail)
    elif kind == "renamed to":
        shown_kind, rename = "renamed", (detail, name)
    else:
        shown_kind, rename = kind, None
    unix = int(e["at_ns"]) / 1e9
    folder = str(e["folder"])
    device = str(e.get("device") or "")
    return {
        "id": e.get("id"),
        "time": unix,
        "utc": dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "iso": e["time"],
        "folder": folder,
        "folder_label": folder_labels.get(folder, folder),
        "name": name,
        "url": file_url(folder, name),
        "kind": kind,
        "shown_kind": shown_kind,
        "rename": rename,
        "detail": "" if rename else detail,
        "device": device,
        "device_name": e.get("device_name") or device[:7],
        "origin": e.get("origin", ""),
        "size": None if kind in NO_SIZE_KINDS or e.get("type") != "file" else e.get("size"),
    }


def page_of(
    entries: Sequence[Mapping[str, Any]], f: HistoryFilters, rows: int = PAGE_ROWS
) -> tuple[Sequence[Mapping[str, Any]], str]:
    """(the entries to show, the "older" page's URL or "" when there is none)."""
    if len(entries) <= rows:
        return entries, ""
    shown = entries[:rows]
    params = {**f.params(), "before": str(shown[-1]["id"])}
    return shown, f"/ui/history?{urlencode(params)}"


def filtered_url(**params: str) -> str:
    """The history page with these filters (empty ones left out)."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"/ui/history?{query}" if query else "/ui/history"


def version_rows(versions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The restorable versions, newest first, with the time the restore form posts."""
    ordered = sorted(versions, key=lambda v: float(v["timestamp"]), reverse=True)
    return [
        {
            "name": v["name"],
            "timestamp": float(v["timestamp"]),
            "utc": dt.datetime.fromtimestamp(float(v["timestamp"]), dt.UTC).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            ),
            "size": v["size"],
        }
        for v in ordered[:PAGE_ROWS]
    ]
