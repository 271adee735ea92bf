"""The guard in front of every request: the API's own guard for ``/api``, sessions here.

For the web interface, in this order: the Host check (the same set as the API's, against
DNS rebinding); a state-changing request from another origin is refused (Origin and
Sec-Fetch-Site, when the browser sends them); the sign-in page and static files are open;
everything else needs a session (a page is redirected to sign-in, anything else refused),
and a state-changing request also the session's CSRF token (header ``X-CSRF-Token``, or
the form field ``csrf_token``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, quote

import trio

from ..api.auth import Guard
from ..api.http import Request, Response
from .render import HTMLResponse, html_error
from .sessions import Session, Sessions, cookie_value, csrf_matches

SAFE_METHODS = frozenset({"GET", "HEAD"})
OPEN_PATHS = frozenset({"/signin", "/favicon.ico"})
CSRF_HEADER = b"x-csrf-token"
CSRF_FIELD = "csrf_token"


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class WebGate:
    """Runs the API's ``Guard`` for ``/api`` and the session checks for the rest."""

    def __init__(
        self,
        api_guard: Guard,
        sessions: Sessions,
        get_cookie: Callable[[], str],
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.api_guard = api_guard
        self.sessions = sessions
        self.get_cookie = get_cookie
        self.clock = clock

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(cookie_value(request.headers, self.get_cookie()), self.clock())

    def __call__(self, request: Request) -> Response | None:
        if is_api(request.path):
            return self.api_guard(request)
        hosts = self.api_guard.get_hosts()
        host = (header(request.headers, b"host") or "").lower()
        if host not in hosts:
            return html_error(403, "Forbidden Host header: open the interface at its own address.")
        unsafe = request.method not in SAFE_METHODS
        if unsafe and not same_origin(request, host):
            return html_error(403, "Cross-site request refused.")
        if request.path in OPEN_PATHS or request.path.startswith("/static/"):
            return None
        session = self.session(request)
        if session is None:
            return _sign_in_first(request)
        if unsafe and not csrf_matches(session, presented_csrf(request)):
            return html_error(403, "Missing or wrong CSRF token: reload the page and try again.")
        return None


def same_origin(request: Request, host: str) -> bool:
    """False when the browser says the request comes from another site or origin."""
    site = header(request.headers, b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = header(request.headers, b"origin")
    return origin is None or origin.lower() == f"http://{host}"


def presented_csrf(request: Request) -> str | None:
    token = header(request.headers, CSRF_HEADER)
    if token:
        return token
    kind = header(request.headers, b"content-type") or ""
    if kind.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(request._body.decode("utf-8", "replace"), keep_blank_values=True))
        return form.get(CSRF_FIELD)
    return None


def _sign_in_first(request: Request) -> Response:
    if header(request.headers, b"hx-request"):
        # htmx follows HX-Redirect with a full page load: the sign-in page
        return html_error(401, "Signed out.", headers={"HX-Redirect": "/signin"})
    if request.method in SAFE_METHODS:
        target = quote(request.path, safe="/")
        return HTMLResponse(None, 303, {"Location": f"/signin?next={target}"})
    return html_error(401, "Sign in first.")
