"""What a link answers: ``/s/<token>[/<path>]`` (a file, a listing, ``?zip``) and the
password form. Read-only: GET/HEAD, and POST only for the password.

- unknown token: 404; revoked, expired or used-up link: 410, nothing served;
- a password link without a session answers the form (401); a right password gives a
  session cookie scoped to the link's path; wrong ones are rate-limited per link and per
  client address (429 with Retry-After);
- every file or zip download is counted against ``max_downloads`` before it starts and
  recorded (when, from where, what, bytes, outcome);
- files are sent as attachments with a restrictive CSP, so a shared HTML file never runs
  in the links' origin.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import trio

from ..api.accept import address_key
from ..api.http import Response
from ..errors import NotFoundError, UnsafePathError
from ..scanner.ignore import Ignore, IgnoreError
from . import paths
from .paths import FileChangedError, Version
from .server import LinkRequest, StreamResponse
from .store import Link, LinkStore
from .tokens import FailureLimiter, check_password
from .zipstream import zip_chunks

log = logging.getLogger("p2psync.links")

SESSION_COOKIE = "p2psync_link"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
}

_STYLE = (
    "body{font-family:sans-serif;max-width:50em;margin:2em auto;padding:0 1em}"
    "td{padding:.2em 1em .2em 0}a{text-decoration:none}"
)


def _page(
    title: str, body: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(text, status, {**SECURITY_HEADERS, **(headers or {})}, media_type="text/html")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class LinkRevokedError(Exception):
    """The link was revoked while one of its downloads was under way."""


@dataclass
class _Session:
    link_id: str
    until: float


class LinkApp:
    """The handler of the link listener, for one node's links."""

    def __init__(
        self,
        store: LinkStore,
        folder_root: Callable[[str], Path | None],
        *,
        clock: Callable[[], float] = time.time,
        per_link: FailureLimiter | None = None,
        per_address: FailureLimiter | None = None,
    ) -> None:
        self.store = store
        self.folder_root = folder_root
        self.clock = clock
        self.per_link = per_link or FailureLimiter(burst=10, refill=60.0)
        self.per_address = per_address or FailureLimiter(burst=5, refill=60.0)
        self.sessions: dict[str, _Session] = {}
        self.revoked: set[str] = set()  # links revoked while this app runs
        self.db = trio.CapacityLimiter(4)
        self.hashing = trio.CapacityLimiter(1)  # scrypt is slow on purpose: one at a time

    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.db)

    # ---- entry -----------------------------------------------------------------------
    async def __call__(self, request: LinkRequest) -> Response:
        if request.method not in ("GET", "HEAD", "POST"):
            return Response("method not allowed", 405, {"Allow": "GET, HEAD, POST"})
        if not request.path.startswith("/s/"):
            return _page("Not found", "<p>There is nothing here.</p>", 404)
        token, _, rest = request.path[3:].partition("/")
        link = await self._thread(self.store.by_token, token) if token else None
        if link is None:
            return _page("Not found", "<p>This link does not exist.</p>", 404)
        state = link.state(self.clock())
        if state != "active":
            return _page("Link no longer available", f"<p>This link is {state}.</p>", 410)
        if link.password is not None and not self._has_session(request, link):
            if request.method == "POST":
                return await self._password(request, link)
            return self._password_form(link, "")
        if request.method == "POST":
            return Response("", 303, {"Location": f"/s/{token}/", **SECURITY_HEADERS})
        try:
            return await self._serve(request, link, rest)
        except (NotFoundError, UnsafePathError) as exc:
            log.info("link %s: %s asked for %r: %s", link.id, request.client, rest, exc)
            return _page("Not found", "<p>This item is not part of the link.</p>", 404)
        except IgnoreError as exc:
            log.warning("link %s: folder %s's ignore file: %s", link.id, link.folder, exc)
            return _page("Unavailable", "<p>The shared folder cannot be read now.</p>", 503)

    # ---- password ------------------------------------------------------------------------
    def _has_session(self, request: LinkRequest, link: Link) -> bool:
        cookie = request.header("cookie") or ""
        now = self.clock()
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                session = self.sessions.get(value)
                if session is not None and session.link_id == link.id and session.until > now:
                    return True
        return False

    def _password_form(self, link: Link, message: str, status: int = 401) -> Response:
        note = f"<p role=alert><strong>{html.escape(message)}</strong></p>" if message else ""
        form = (
            f"{note}<form method=post action='/s/{quote(link.token)}/'>"
            "<label>Password <input type=password name=password autofocus required></label> "
            "<button type=submit>Open</button></form>"
        )
        return _page("This link needs a password", form, status)

    async def _password(self, request: LinkRequest, link: Link) -> Response:
        now = self.clock()
        keys_link, keys_addr = [f"link:{link.id}"], [address_key(request.client)]
        wait = max(
            self.per_link.retry_after(keys_link, now), self.per_address.retry_after(keys_addr, now)
        )
        if wait > 0:
            log.warning("link %s: password attempts from %s rate-limited", link.id, request.client)
            retry = str(max(1, round(wait)))
            page = self._password_form(link, f"Too many wrong passwords; retry in {retry} s.", 429)
            page.headers["Retry-After"] = retry
            return page
        self.per_link.failed(keys_link, now)  # taken before the check, refunded if right
        self.per_address.failed(keys_addr, now)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        password = form.get("password", "")
        assert link.password is not None
        right = await trio.to_thread.run_sync(
            check_password, password, link.password, limiter=self.hashing
        )
        if not right:
            log.warning("link %s: wrong password from %s", link.id, request.client)
            return self._password_form(link, "Wrong password.")
        now = self.clock()
        self.per_link.refund(keys_link, now)
        self.per_address.refund(keys_addr, now)
        session = secrets.token_urlsafe(24)
        self._add_session(session, _Session(link.id, self.clock() + SESSION_SECONDS))
        cookie = (
            f"{SESSION_COOKIE}={session}; Path=/s/{link.token}; Secure; HttpOnly; "
            f"SameSite=Strict; Max-Age={SESSION_SECONDS}"
        )
        headers = {"Location": f"/s/{link.token}/", "Set-Cookie": cookie, **SECURITY_HEADERS}
        return Response("", 303, headers)

    def _add_session(self, key: str, session: _Session) -> None:
        now = self.clock()
        if len(self.sessions) >= MAX_SESSIONS:
            for old in [k for k, s in self.sessions.items() if s.until <= now]:
                del self.sessions[old]
            while len(self.sessions) >= MAX_SESSIONS:
                del self.sessions[next(iter(self.sessions))]
        self.sessions[key] = session

    # ---- content -------------------------------------------------------------------------
    async def _serve(self, request: LinkRequest, link: Link, rest: str) -> Response:
        root = self.folder_root(link.folder)
        if root is None:
            raise NotFoundError(f"folder {link.folder} is no longer configured")
        ignore: Ignore = await trio.to_thread.run_sync(Ignore.load, root)
        paths.check_name(link.path, ignore)
        sub = rest.rstrip("/")
        if sub:
            paths.validate_name(sub)
        name = paths.join(link.path, sub)
        paths.check_name(name, ignore)
        root_fd = await trio.to_thread.run_sync(paths.open_root, root)
        try:
            fd = await trio.to_thread.run_sync(paths.open_inside, root_fd, name)
            if not await trio.to_thread.run_sync(paths.is_dir, fd):
                return await self._file(request, link, name, fd)  # fd passed on
            try:
                if not request.path.endswith("/"):
                    query = b"?" + request.query_string if request.query_string else b""
                    location = quote(request.path) + "/" + query.decode("latin-1")
                    return Response("", 301, {"Location": location, **SECURITY_HEADERS})
                if "zip" in request.query_params:
                    zip_root, root_fd = root_fd, -1
                    return await self._zip(request, link, name, sub, zip_root, ignore)
                entries = await trio.to_thread.run_sync(paths.list_dir, fd, name, ignore)
            finally:
                os.close(fd)
        finally:
            if root_fd >= 0:
                os.close(root_fd)
        return self._listing(link, sub, entries)

    def _listing(self, link: Link, sub: str, entries: list[paths.Entry]) -> Response:
        title = (sub or link.path or link.folder).rpartition("/")[2] or link.folder
        rows = []
        if sub:
            rows.append("<tr><td><a href='../'>..</a></td><td></td></tr>")
        for e in entries:
            href = quote(e.name) + ("/" if e.is_dir else "")
            label = html.escape(e.name) + ("/" if e.is_dir else "")
            size = "" if e.is_dir else _size(e.size)
            rows.append(f"<tr><td><a href='{href}'>{label}</a></td><td>{size}</td></tr>")
        body = (
            "<p><a href='?zip' id=zip>Download all as .zip</a></p>"
            f"<table>{''.join(rows)}</table>" + ("<p>Empty folder.</p>" if not entries else "")
        )
        return _page(title, body)

    async def _claim(self, request: LinkRequest, link: Link, what: str) -> int | None:
        """Count and record a download; None (answer 410) if the link ran out meanwhile."""
        now = self.clock()
        if not await self._thread(self.store.claim_download, link.id, now):
            return None
        seq: int = await self._thread(
            lambda: self.store.record(link.id, at=now, address=request.client, what=what)
        )
        return seq

    async def _finish(self, seq: int, sent: int, outcome: str) -> None:
        with trio.CancelScope(shield=True):
            await self._thread(lambda: self.store.finish(seq, sent=sent, outcome=outcome))

    async def _file(self, request: LinkRequest, link: Link, name: str, fd: int) -> Response:
        start = Version.of(await trio.to_thread.run_sync(os.fstat, fd))
        base = name.rpartition("/")[2] or link.folder
        media = mimetypes.guess_type(base)[0] or "application/octet-stream"
        headers = {**SECURITY_HEADERS, "Content-Disposition": _attachment(base)}
        if request.method == "HEAD":
            os.close(fd)
            return StreamResponse(_nothing(), length=start.size, headers=headers, media_type=media)
        seq = await self._claim(request, link, name)
        if seq is None:
            os.close(fd)
            return _page("Link no longer available", "<p>This link is used up.</p>", 410)
        log.info("link %s: %s downloads %r", link.id, request.client, name)
        chunks = _Body(
            self, link.id, seq, lambda: paths.read_consistent(fd, start), lambda: os.close(fd)
        )
        return StreamResponse(chunks, length=start.size, headers=headers, media_type=media)

    async def _zip(
        self, request: LinkRequest, link: Link, name: str, sub: str, root_fd: int, ignore: Ignore
    ) -> Response:
        base = (sub or link.path).rpartition("/")[2] or link.folder
        headers = {**SECURITY_HEADERS, "Content-Disposition": _attachment(base + ".zip")}
        if request.method == "HEAD":
            os.close(root_fd)
            return StreamResponse(
                _nothing(), length=None, headers=headers, media_type="application/zip"
            )
        seq = await self._claim(request, link, f"{name}/ (zip)" if name else "/ (zip)")
        if seq is None:
            os.close(root_fd)
            return _page("Link no longer available", "<p>This link is used up.</p>", 410)
        log.info("link %s: %s downloads %r as zip", link.id, request.client, name or "/")
        files: list[str] = []
        chunks = _Body(
            self,
            link.id,
            seq,
            lambda: zip_chunks(root_fd, name, ignore, files),
            lambda: os.close(root_fd),
        )
        return StreamResponse(chunks, length=None, headers=headers, media_type="application/zip")


class _Body:
    """A download's body: the blocking generator ``make()`` stepped in a worker thread,
    its outcome recorded, ``close`` called once whether or not it was ever iterated."""

    def __init__(
        self,
        app: LinkApp,
        link_id: str,
        seq: int,
        make: Callable[[], Iterator[bytes]],
        close: Callable[[], None],
    ) -> None:
        self.app = app
        self.link_id = link_id
        self.seq = seq
        self.make = make
        self.close = close
        self._started: AsyncIterator[bytes] | None = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._started = self._run()
        return self._started

    async def aclose(self) -> None:
        if self._started is not None:
            await self._started.aclose()  # type: ignore[attr-defined]
        elif not self._closed:
            self._closed = True
            self.close()
            await self.app._finish(self.seq, 0, "failed: not sent")

    async def _run(self) -> AsyncIterator[bytes]:
        sent = 0
        outcome = "failed: the client went away"
        done = object()
        source: Iterator[bytes] | None = None
        try:
            source = self.make()
            while True:
                data = await trio.to_thread.run_sync(next, source, done)
                if data is done:
                    break
                if self.link_id in self.app.revoked:
                    raise LinkRevokedError("the link was revoked")
                assert isinstance(data, bytes)
                sent += len(data)
                yield data
            outcome = "complete"
        except (FileChangedError, LinkRevokedError) as exc:
            outcome = f"failed: {exc}"
            raise
        except OSError as exc:
            outcome = f"failed: {exc.strerror or exc}"
            raise
        finally:
            self._closed = True
            if source is not None:
                close_source = getattr(source, "close", None)
                if close_source is not None:
                    close_source()
            self.close()
            await self.app._finish(self.seq, sent, outcome)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _attachment(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
