"""The share-links pages' context, pure: the API's links (``GET /api/links``) to table
rows, the listener's state to a notice, the create form to ``LinkManager.create``'s
arguments (refused with a message naming the field).

``now`` is passed in; nothing here reads the clock or the link store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..errors import UsageError

MAX_DOWNLOADS_SHOWN = 200  # rows of one link's download log on its page
# the expiry choices, as (value, label, seconds; None: never)
EXPIRIES: tuple[tuple[str, str, float | None], ...] = (
    ("1h", "in 1 hour", 3600.0),
    ("1d", "in 1 day", 86_400.0),
    ("7d", "in 7 days", 7 * 86_400.0),
    ("30d", "in 30 days", 30 * 86_400.0),
    ("never", "never", None),
)
DEFAULT_EXPIRY = "7d"
MAX_PASSWORD = 1024


def create_args(form: Mapping[str, str]) -> dict[str, Any]:
    """``LinkManager.create``'s keyword arguments from the page's create form."""
    folder = form.get("folder", "").strip()
    if not folder:
        raise UsageError("choose the folder to share from")
    expiries = {value: seconds for value, _, seconds in EXPIRIES}
    expiry = form.get("expires", DEFAULT_EXPIRY).strip() or DEFAULT_EXPIRY
    if expiry not in expiries:
        raise UsageError(f"the expiry must be one of {', '.join(expiries)}, not {expiry[:20]!r}")
    password = form.get("password", "")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password is longer than {MAX_PASSWORD} characters")
    raw_max = form.get("max_downloads", "").strip()
    max_downloads: int | None = None
    if raw_max:
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise UsageError(
                f"maximum downloads must be a whole number from 1, not {raw_max[:20]!r}"
            )
        max_downloads = int(raw_max)
    return {
        "folder": folder,
        "path": form.get("path", "").strip().strip("/"),
        "expires_in": expiries[expiry],
        "password": password or None,
        "max_downloads": max_downloads,
    }


def target_of(link: Mapping[str, Any]) -> str:
    """What a link shares, as "folder" or "folder/path"."""
    path = str(link.get("path") or "")
    return f"{link['folder']}/{path}" if path else str(link["folder"])


def link_url(link_id: str) -> str:
    """The link's page in the web interface."""
    return f"/ui/links/{quote(link_id, safe='')}"


def link_row(link: Mapping[str, Any], now: float) -> dict[str, Any]:
    recent = link.get("recent_downloads") or []
    expires = link.get("expires")
    max_downloads = link.get("max_downloads")
    return {
        "id": link["id"],
        "target": target_of(link),
        "created": link["created"],
        "expires": expires,
        "expired": expires is not None and now >= float(expires),
        "state": link["state"],
        "active": link["state"] == "active",
        "has_password": bool(link.get("has_password")),
        "downloads": link["downloads"],
        "max_downloads": max_downloads,
        "used": f"{link['downloads']} / {max_downloads if max_downloads is not None else '∞'}",
        "last_download": recent[0] if recent else None,
        "url": link.get("url") or "",
        "page": link_url(str(link["id"])),
    }


def link_rows(links: Sequence[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """Table rows, newest link first."""
    ordered = sorted(links, key=lambda link: float(link["created"]), reverse=True)
    return [link_row(link, now) for link in ordered]


def listener_notice(listener: Mapping[str, Any]) -> dict[str, Any]:
    """What the page says about the link listener: where it is, its certificate, and a
    warning when other machines can reach it (the daemon's own ``exposure_warning``)."""
    running = bool(listener.get("running"))
    if running:
        note = ""
    elif listener.get("error"):
        note = f"The link listener is not running: {listener['error']}"
    else:
        note = "The link listener is off: it starts when the first link is created."
    return {
        "running": running,
        "address": listener.get("address") or "",
        "fingerprint": listener.get("fingerprint") or "",
        "warning": listener.get("warning") or "",
        "note": note,
    }


def download_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A link's download log, newest first as the store gives it, at most a page."""
    return [
        {
            "at": row["at"],
            "address": row["address"],
            "what": row["what"],
            "bytes": row["bytes"],
            "outcome": row["outcome"],
        }
        for row in rows[:MAX_DOWNLOADS_SHOWN]
    ]
