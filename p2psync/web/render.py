"""HTML responses: the Jinja2 environment (autoescaped), filters for sizes and times, the QR code.

Templates only format what the views give them; every decision is made in Python.
jinja2 and segno are imported on first use, so a daemon nobody browses never loads them.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..api.http import Response
from ..values import FolderKind

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# No inline script may run, nothing is loaded from elsewhere, no page may frame this one.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null"
    "Cache-Control": "no-store",
}


class HTMLResponse(Response):
    media_type = "text/html"

    def __init__(
        self, content: Any = None, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(content, status_code, {**SECURITY_HEADERS, **(headers or {})})


def html_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A small page (or fragment, when htmx swaps it) saying what went wrong."""
    body = f'<p class="error" role="alert">{html.escape(message)}</p>'
    return HTMLResponse(body, status, headers)


@functools.cache
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=size_text, rate=rate_text, ago=ago_text, when=when_text)
    env.globals.update(folder_kinds=tuple(FolderKind))  # the type choices, in one place
    return env


def page(
    name: str, status: int = 200, headers: Mapping[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    return HTMLResponse(environment().get_template(name).render(**ctx), status, headers)


def fragment(name: str, **ctx: Any) -> str:
    return str(environment().get_template(name).render(**ctx))


def qr_svg(text: str) -> str:
    """``text`` as an inline SVG QR code (no script, no style: fine under the CSP)."""
    import segno

    return str(segno.make(text, error="m").svg_inline(scale=4, title="QR code of the device ID"))


def size_text(n: float | None) -> str:
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def rate_text(bps: float | None) -> str:
    return f"{size_text(bps or 0)}/s"


def ago_text(unix: float | None, now: float | None = None) -> str:
    if not unix:
        return "never"
    seconds = max(0.0, (now if now is not None else time.time()) - unix)
    if seconds < 5:
        return "just now"
    for limit, unit, div in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{int(seconds // div)} {unit} ago"
    return f"{int(seconds // 86400)} d ago"


def when_text(unix: float | None) -> str:
    if not unix:
        return "–"
    return dt.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")
