"""The web interface, served by the control API's app on the same address (DESIGN §11).

Server-side Jinja2 templates with htmx (pinned, shipped in ``static/``); sign-in with the
API key gives a session cookie; see docs/web.md for the pages and the security model.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api.auth import Guard
from ..api.handlers import Handlers
from ..api.http import Route
from .gate import WebGate
from .pages import Web, shown_errors, shown_page_errors
from .sessions import Sessions, cookie_name


def mount(
    api: Handlers, key: str, api_guard: Guard, get_bound: Callable[[], str | None]
) -> tuple[list[Route], WebGate]:
    """The web routes for ``api``'s node and the guard for the whole app (API included)."""
    sessions = Sessions()

    def get_cookie() -> str:
        return cookie_name(get_bound())

    gate = WebGate(api_guard, sessions, get_cookie)
    web = Web(api, key, sessions, get_cookie, gate.session)
    post = ["POST"]
    act, pages = shown_errors, shown_page_errors
    routes = [
        Route("/", pages(web.overview)),
        Route("/folders/{id}", pages(web.folder)),
        Route("/events", pages(web.events)),
        Route("/ui/history", pages(web.history)),
        Route("/ui/history/{folder}/{path:path}", pages(web.file_history)),
        Route("/ui/links", pages(web.links)),
        Route("/ui/links/{id}", pages(web.link)),
        Route("/ui/links", act(web.link_create), methods=post),
        Route("/ui/links/{id}/revoke", act(web.link_revoke), methods=post),
        Route("/signin", web.signin_page),
        Route("/signin", web.signin, methods=post),
        Route("/signout", web.signout, methods=post),
        Route("/api/web/signin-link", web.signin_link, methods=post),  # API key, not session
        Route("/static/{name}", web.static),
        Route("/ui/live", act(web.live)),
        Route("/ui/check/device-id", act(web.check_device_id)),
        Route("/ui/devices", act(web.device_add), methods=post),
        Route("/ui/devices/{id}/pause", act(web.device_pause(True)), methods=post),
        Route("/ui/devices/{id}/resume", act(web.device_pause(False)), methods=post),
        Route("/ui/pending/devices/{id}/accept", act(web.pending_device_accept), methods=post),
        Route("/ui/pending/devices/{id}/ignore", act(web.pending_device_ignore), methods=post),
        Route("/ui/pending/folders/{id}/accept", act(web.pending_folder_accept), methods=post),
        Route("/ui/pending/folders/{id}/ignore", act(web.pending_folder_ignore), methods=post),
        Route("/ui/folders", act(web.folder_add), methods=post),
        Route("/ui/folders/{id}/share", act(web.folder_share), methods=post),
        Route("/ui/folders/{id}/pause", act(web.folder_pause(True)), methods=post),
        Route("/ui/folders/{id}/resume", act(web.folder_pause(False)), methods=post),
        Route("/ui/folders/{id}/scan", act(web.folder_scan), methods=post),
        Route("/ui/folders/{id}/settings", act(web.folder_settings), methods=post),
        Route("/ui/folders/{id}/remove", act(web.folder_remove), methods=post),
        Route("/ui/folders/{id}/selection", act(web.folder_selection), methods=post),
        Route("/ui/devices/{id}/remove", act(web.device_remove), methods=post),
        Route("/ui/folders/{id}/versions/restore", act(web.version_restore), methods=post),
        Route("/ui/folders/{id}/conflicts/keep", act(web.conflict_keep), methods=post),
        Route("/ui/folders/{id}/ignore/preview", act(web.ignore_preview), methods=post),
        Route("/ui/folders/{id}/ignore", act(web.ignore_save), methods=post),
    ]
    return routes, gate
