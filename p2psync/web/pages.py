"""The web interface's handlers: sign-in, the overview and its live updates, the actions.

Every action calls the API's service methods (``_Api.add_device`` and the rest) or the
same ``edits``/views the JSON API uses; templates only lay out what these return. An
action answers with a message for the form that sent it plus fresh copies of the
sections of the page it came from (htmx swaps them "out of band"), so the page follows
at once. Pages stay live by long-polling ``/ui/live`` (see ``live``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import trio

from ..api import edits, ignores
from ..api.auth import key_matches
from ..api.handlers import Handlers
from ..api.http import HTTPException, Request, Response
from ..api.parsing import device_in_path, parse_time
from ..api.registry import LinkService
from ..config import Config
from ..errors import P2PSyncError
from ..identity import DeviceID
from ..settings import Scope, change_settings, coerce, get_setting
from ..values import FolderKind
from .contexts import VIEWS, render_view, view_of
from .gate import header
from .links_view import create_args, listener_notice, target_of
from .password import check_password
from .render import STATIC, HTMLResponse, fragment, html_error, page
from .sessions import Sessions, clear_cookie, set_cookie

log = logging.getLogger("p2psync.web")

LIVE_WAIT = 5.0  # a live poll answers after this long without events (rates move on)
COALESCE = 0.5  # after an event, wait this long for the rest of its burst (at most 2 renders/s)
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
# The folder page's settings form (templates/folder.html), key by key as in config.toml.
FOLDER_FORM_KEYS = (
    "type",
    "versioning.type",
    "versioning.keep",
    "rescan_interval_s",
    "watcher",
    "watcher_delay_ms",
    "ignore_permissions",
    "history_days",
)
FOLDER_FORM_CHECKBOXES = ("watcher", "ignore_permissions")

Handler = Callable[[Request], Awaitable[Response]]


class Web:
    """The pages of one node, bound to the API's service object."""

    def __init__(
        self,
        api: Handlers,
        key: str,
        sessions: Sessions,
        get_cookie: Callable[[], str],
        get_session: Callable[[Request], Any],
    ) -> None:
        self.api = api
        self.node = api.node
        self.key = key
        self.sessions = sessions
        self.get_cookie = get_cookie
        self.get_session = get_session

    # ---- sign-in ---------------------------------------------------------------------
    async def signin_page(self, request: Request) -> Response:
        if self.get_session(request) is not None:
            return _redirect(_local(request.query_params.get("next")))
        if "ticket" in request.query_params:
            if self.sessions.redeem(request.query_params["ticket"], trio.current_time()):
                return self._signed_in("/")
            return page(
                "signin.html", 401, next="/", error="That sign-in link is used up or expired."
            )
        return page("signin.html", next=_local(request.query_params.get("next")), error="")

    async def signin(self, request: Request) -> Response:
        form = _form(request)
        target = _local(form.get("next"))
        now = trio.current_time()
        if self.sessions.throttled(now):
            return page(
                "signin.html", 429, next=target, error="Too many wrong keys: wait a minute."
            )
        secret = form.get("key", "")
        if not key_matches(secret.strip(), self.key) and not await trio.to_thread.run_sync(
            check_password, self.node.home, secret
        ):
            self.sessions.note_failure(now)
            log.warning("web sign-in refused: wrong API key or password")
            return page("signin.html", 401, next=target, error="Wrong API key or password.")
        return self._signed_in(target)

    def _signed_in(self, target: str) -> Response:
        session = self.sessions.create(trio.current_time())
        return _redirect(target, {"Set-Cookie": set_cookie(self.get_cookie(), session.token)})

    async def signin_link(self, request: Request) -> Response:
        """API (key required): a one-time sign-in link, for `p2psync open`."""
        ticket = self.sessions.new_ticket(trio.current_time())
        body = json.dumps({"path": f"/signin?ticket={ticket}"})
        return Response(body, 200, media_type="application/json")

    async def signout(self, request: Request) -> Response:
        session = self.get_session(request)
        self.sessions.end(session.token if session else None)
        return _redirect("/signin", {"Set-Cookie": clear_cookie(self.get_cookie())})

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        if kind is None or "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404)
        body = await trio.to_thread.run_sync(path.read_bytes)
        return Response(body, 200, {"Cache-Control": "max-age=3600"}, media_type=kind)

    # ---- pages and their live updates ----------------------------------------------
    async def overview(self, request: Request) -> Response:
        return await self._page(request, "overview.html", "overview", {})

    async def folder(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        if self.node.config.folder(folder_id) is None:
            return page("missing.html", 404, what=f"There is no folder {folder_id!r}.")
        return await self._page(request, "folder.html", "folder", {"id": folder_id})

    async def events(self, request: Request) -> Response:
        types = request.query_params.get("types", "")
        return await self._page(request, "events.html", "events", {"types": types})

    async def history(self, request: Request) -> Response:
        params = {k: request.query_params.get(k, "") for k in VIEWS["history"]}
        return await self._page(request, "history.html", "history", params)

    async def file_history(self, request: Request) -> Response:
        folder_id, path = request.path_params["folder"], request.path_params["path"]
        if self.node.config.folder(folder_id) is None:
            return page("missing.html", 404, what=f"There is no folder {folder_id!r}.")
        params = {"folder": folder_id, "path": path}
        return await self._page(request, "file_history.html", "file_history", params)

    async def links(self, request: Request) -> Response:
        return await self._page(request, "links.html", "links", {})

    async def link(self, request: Request) -> Response:
        return await self._page(request, "link.html", "link", {"id": request.path_params["id"]})

    async def _page(
        self, request: Request, template: str, view: str, params: dict[str, str]
    ) -> Response:
        ctx, sections = await render_view(self.api, view, params)
        if view == "folder":  # the editor is outside the live sections: typing is kept
            ctx["ignore_text"] = await self.api.ctx.thread(
                ignores.read_ignore_text, self.api.ctx.folder_config(params["id"]).resolved_path
            )
        return page(
            template,
            csrf=self.get_session(request).csrf,
            sections=sections,
            live=self._live_url(view, params, sections),
            **ctx,
        )

    async def live(self, request: Request) -> Response:
        """Long poll: answers once the event log moves (or after ``LIVE_WAIT``) with the
        sections of the page's view whose content changed since the digests it sent."""
        q = request.query_params
        view = q.get("view", "overview")
        if view not in VIEWS:
            raise HTTPException(404)
        params = {k: q.get(k, "") for k in VIEWS[view]}
        try:
            since = int(q.get("since", "0"))
        except ValueError:
            since = 0
        if await self.node.events.wait_since(since, timeout=LIVE_WAIT):
            await trio.sleep(COALESCE)
        _, sections = await render_view(self.api, view, params)
        changed = {n: h for n, h in sections.items() if q.get(n) != _digest(h)}
        return HTMLResponse(
            fragment("_live.html", url=self._live_url(view, params, sections), oob=changed),
        )

    def _live_url(self, view: str, params: dict[str, str], sections: dict[str, str]) -> str:
        query = {"view": view, **params, "since": str(self.node.events.last_id)}
        query.update({n: _digest(h) for n, h in sections.items()})
        return f"/ui/live?{urlencode(query)}"

    # ---- actions -------------------------------------------------------------------
    async def check_device_id(self, request: Request) -> Response:
        """As-you-type validation with the CLI's own parser."""
        text = request.query_params.get("id", "")
        if not text.strip():
            return HTMLResponse('<span class="hint">Paste the other device\'s ID.</span>')
        try:
            did = DeviceID.parse(text)
        except P2PSyncError as exc:
            return HTMLResponse(fragment("_message.html", ok=False, message=str(exc)))
        if did == self.node.device_id:
            return HTMLResponse(
                fragment("_message.html", ok=False, message="That is this device's own ID.")
            )
        return HTMLResponse(fragment("_message.html", ok=True, message=f"Valid: {did}"))

    async def device_add(self, request: Request) -> Response:
        form = _form(request)
        did, existed = await self.api.devices.add_device(
            DeviceID.parse(form.get("id", "")),
            name=form.get("name", "").strip(),
            addresses=[a for a in [form.get("address", "").strip()] if a],
        )
        return await self._done(request, f"{'Updated' if existed else 'Added'} device {did}.")

    async def pending_device_accept(self, request: Request) -> Response:
        did = device_in_path(request)
        await self.api.devices.accept_pending_device(did)
        return await self._done(request, f"Accepted device {did}.")

    async def pending_device_ignore(self, request: Request) -> Response:
        did = str(device_in_path(request))
        await self.api.ctx.thread(self.node.pending.remove_device, did)
        return await self._done(request, f"Ignored device {did} (until it asks again).")

    async def pending_folder_accept(self, request: Request) -> Response:
        form = _form(request)
        fc = await self.api.devices.accept_pending_folder(
            request.path_params["id"], form.get("path", "").strip()
        )
        return await self._done(request, f"Accepted folder {fc.id!r} at {fc.path}.")

    async def pending_folder_ignore(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        await self.api.ctx.thread(self.node.pending.remove_folder, folder_id)
        return await self._done(
            request, f"Ignored folder {folder_id!r} (until it is offered again)."
        )

    async def folder_add(self, request: Request) -> Response:
        pairs = _pairs(request)
        form = dict(pairs)
        fc = await self.api.folders.add_folder(
            form.get("path", "").strip(),
            folder_id=form.get("id", "").strip(),
            label=form.get("label", "").strip(),
            folder_type=form.get("type", "") or FolderKind.SEND_RECEIVE,
            share=[DeviceID.parse(v) for k, v in pairs if k == "share"],
        )
        return await self._done(request, f"Added folder {fc.id!r} at {fc.path}.")

    async def folder_share(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        device = _form(request).get("device", "")
        already = await self.api.folders.share_folder(folder_id, DeviceID.parse(device))
        verb = "was already shared" if already else "is now shared"
        return await self._done(request, f"Folder {folder_id!r} {verb} with {device}.")

    def folder_pause(self, paused: bool) -> Handler:
        async def handler(request: Request) -> Response:
            folder_id = request.path_params["id"]
            await self.api.ctx.change(lambda cfg: edits.set_folder_paused(cfg, folder_id, paused))
            return await self._done(
                request, f"Folder {folder_id!r} {'paused' if paused else 'resumed'}."
            )

        return handler

    def device_pause(self, paused: bool) -> Handler:
        async def handler(request: Request) -> Response:
            did = device_in_path(request)
            await self.api.ctx.change(lambda cfg: edits.set_device_paused(cfg, did, paused))
            return await self._done(request, f"Device {did} {'paused' if paused else 'resumed'}.")

        return handler

    async def folder_settings(self, request: Request) -> Response:
        """The settings form: every field it shows, set at once and validated as
        config.toml is (an unchecked box is false)."""
        folder_id = request.path_params["id"]
        form = _form(request)
        scope = Scope("folder", folder_id)

        def edit(cfg: Config) -> Config:
            values = {}
            for key in FOLDER_FORM_KEYS:
                raw = (
                    ("true" if key in form else "false")
                    if key in FOLDER_FORM_CHECKBOXES
                    else form.get(key)
                )
                if raw is not None:
                    values[key] = coerce(get_setting(cfg, scope, key), key, [raw.strip()])
            return change_settings(cfg, scope, set_values=values)

        await self.api.ctx.change(edit)
        return await self._done(request, f"Saved the settings of folder {folder_id!r}.")

    async def folder_selection(self, request: Request) -> Response:
        """Selective sync: the paths this device keeps, one a line (none: everything)."""
        folder_id = request.path_params["id"]
        lines = _form(request).get("selected", "").splitlines()
        paths = [line.strip() for line in lines if line.strip()]
        new = await self.api.ctx.change(lambda cfg: edits.set_selection(cfg, folder_id, paths))
        fc = new.folder(folder_id)
        kept = ", ".join(fc.selected) if fc is not None and fc.selected else "the whole folder"
        return await self._done(request, f"Folder {folder_id!r} now keeps {kept} on this device.")

    async def folder_remove(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        await self.api.ctx.change(lambda cfg: edits.remove_folder(cfg, folder_id))
        message = f"Removed folder {folder_id!r}; its files stay on disk."
        return HTMLResponse(
            fragment("_message.html", ok=True, message=message), headers={"HX-Redirect": "/"}
        )

    async def device_remove(self, request: Request) -> Response:
        did = device_in_path(request)
        await self.api.ctx.change(lambda cfg: edits.remove_device(cfg, did))
        return await self._done(request, f"Removed device {did}: it is no longer trusted.")

    async def folder_scan(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        self.api.ctx.runner(folder_id).request_scan(None)
        return await self._done(request, f"Scanning {folder_id!r}.")

    async def version_restore(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        form = _form(request)
        path = form.get("path", "")
        at = parse_time(form.get("at") or None)
        restored = await self.api.versions.restore_version(folder_id, path, at)
        return await self._done(request, f"Restored {path} from {restored}.")

    async def conflict_keep(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        form = _form(request)
        keep = form.get("keep", "")
        kept = await self.api.versions.keep_conflict(folder_id, form.get("copy", ""), keep)
        other = "the original" if keep == "copy" else "the conflict copy"
        return await self._done(
            request,
            f"Kept {'the conflict copy' if keep == 'copy' else 'the original'} as "
            f"{kept}; {other} went to the folder's versions.",
        )

    async def ignore_preview(self, request: Request) -> Response:
        """As-you-type: which names on disk the draft patterns ignore."""
        fc = self.api.ctx.folder_config(request.path_params["id"])
        text = _form(request).get("patterns", "")
        found = await self.api.ctx.thread(ignores.preview, fc.resolved_path, text)
        return HTMLResponse(fragment("_ignore_preview.html", **found))

    async def ignore_save(self, request: Request) -> Response:
        folder_id = request.path_params["id"]
        fc = self.api.ctx.folder_config(folder_id)
        text = _form(request).get("patterns", "")
        await self.api.ctx.thread(ignores.save_ignore_text, fc.resolved_path, text)
        runner = self.node.model.folders.get(folder_id)
        if runner is not None:
            runner.request_scan(None)  # the scanner reads the new patterns
        return await self._done(request, "Saved the ignore patterns; rescanning.")

    async def link_create(self, request: Request) -> Response:
        """A new share link: its URL (shown once here, and in the list) and the listener's
        certificate fingerprint, as ``p2psync link create`` prints them."""
        links = self._links()
        created = await links.create(**create_args(_form(request)))
        _, oob = await self._sections(request)
        notice = listener_notice(links.listener_view())
        return HTMLResponse(fragment("_link_created.html", link=created, listener=notice, oob=oob))

    async def link_revoke(self, request: Request) -> Response:
        revoked = await self._links().revoke(request.path_params["id"])
        return await self._done(
            request, f"Revoked the link to {target_of(revoked)}: its URL now answers 410 Gone."
        )

    def _links(self) -> LinkService:
        if self.node.links is None:
            raise HTTPException(503, "share links are not available on this node")
        return self.node.links

    async def _sections(self, request: Request) -> tuple[dict[str, Any], dict[str, str]]:
        """The sections of the page an action was sent from, freshly rendered."""
        view, params = view_of(header(request.headers, b"hx-current-url") or "/")
        return await render_view(self.api, view, params)

    async def _done(self, request: Request, message: str) -> Response:
        """The message for the form, plus the sections of the page it was sent from."""
        _, oob = await self._sections(request)
        return HTMLResponse(fragment("_message.html", ok=True, message=message, oob=oob))


def shown_errors(handler: Handler) -> Handler:
    """A refused action answers its message where the form shows it (422), never a trace."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except P2PSyncError as exc:
            return HTMLResponse(fragment("_message.html", ok=False, message=str(exc)), 422)
        except ValueError as exc:
            return HTMLResponse(fragment("_message.html", ok=False, message=str(exc)), 422)
        except HTTPException as exc:
            return html_error(exc.status_code, str(exc.detail))
        except Exception:
            log.exception("web %s %s failed", request.method, request.path)
            return html_error(500, "Something went wrong inside the daemon; see its log.")

    return wrapped


def shown_page_errors(handler: Handler) -> Handler:
    """A page that cannot be built says so in a page, never a trace or a blank."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except P2PSyncError as exc:
            return page("missing.html", 400, what=str(exc))
        except Exception:
            log.exception("web %s %s failed", request.method, request.path)
            return page(
                "missing.html", 500, what="This page failed inside the daemon; see its log."
            )

    return wrapped


def _digest(html: str) -> str:
    return hashlib.blake2s(html.encode(), digest_size=6).hexdigest()


def _pairs(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request._body.decode("utf-8", "replace"), keep_blank_values=True)


def _form(request: Request) -> dict[str, str]:
    return dict(_pairs(request))


def _local(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may be a redirect target."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _redirect(target: str, headers: dict[str, str] | None = None) -> Response:
    return HTMLResponse(None, 303, {"Location": target, **(headers or {})})
