"""``serve_links``: the link listener of a node, off until a link exists.

``LinkManager`` creates, lists and revokes links (for the control API) and runs the
HTTPS listener in the service's own nursery: started when the node starts if an active
link exists, else by the first ``create``; rebound when ``create`` asks for another
``listen`` address. The listen address is kept in the link store; with port 0 the port
the system picks is remembered, so URLs stay valid across restarts.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import trio

from ..errors import ConfigError, NotFoundError, UsageError
from ..scanner.ignore import Ignore
from . import paths
from .server import serve_tls
from .serving import LinkApp
from .store import Link, LinkStore
from .tls import Certificate, ensure_certificate, server_context
from .tokens import hash_password

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("p2psync.links")

DEFAULT_LISTEN = "127.0.0.1:0"
LISTEN_KEY = "listen"
PUBLIC_URL_KEY = "public_url"


def split_listen(text: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into (host, port); UsageError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"listen address {text!r} is not HOST:PORT")
    host = host.strip("[]")
    return host, int(port)


def exposure_warning(host: str, address: str) -> str | None:
    """The warning for a listener reachable from other machines (None on loopback)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if ip.is_loopback:
            return None
    except ValueError:
        if host == "localhost":
            return None
    return (
        f"share links are reachable from other machines at https://{address}/: anyone "
        "who has a link's URL (and its password, if it has one) can download what it shares"
    )


@dataclass
class Listener:
    address: str  # "host:port" as bound
    certificate: Certificate
    scope: trio.CancelScope
    done: trio.Event


class LinkManager:
    def __init__(
        self,
        home: Path,
        folder_root: Callable[[str], Path | None],
        nursery: trio.Nursery,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.home = Path(home)
        self.store = LinkStore(self.home)
        self.folder_root = folder_root
        self.clock = clock
        self.app = LinkApp(self.store, folder_root, clock=clock)
        self.listener: Listener | None = None
        self.error = ""  # why the listener is not running ("" when it is or is not needed)
        self._nursery = nursery
        self._lock = trio.Lock()

    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args)

    async def store_call(self, method: str, *args: Any) -> Any:
        """``LinkStore.<method>(*args)`` in a worker thread."""
        return await self._thread(getattr(self.store, method), *args)

    # ---- listener ------------------------------------------------------------------
    async def start_if_needed(self) -> None:
        """Start the listener if an active link exists; a failure (the port taken, an
        unusable certificate or store) is logged and leaves the node running."""
        try:
            links = await self._thread(self.store.links)
        except (OSError, sqlite3.Error) as exc:
            self.error = f"link store {self.store.path} unusable: {exc}"
            log.error("share links not served: %s", self.error)
            return
        if any(link.state(self.clock()) == "active" for link in links):
            try:
                await self.ensure_listening()
            except (OSError, sqlite3.Error, UsageError, ConfigError) as exc:
                self.error = str(exc)
                log.error("share links not served: %s", exc)

    async def ensure_listening(self, listen: str | None = None) -> Listener:
        async with self._lock:
            configured = await self._thread(self.store.setting, LISTEN_KEY) or DEFAULT_LISTEN
            wanted = listen or configured
            if self.listener is not None and (listen is None or listen == configured):
                return self.listener
            host, port = split_listen(wanted)
            cert = await self._thread(ensure_certificate, self.home, host)
            context = server_context(cert)
            old = self.listener
            start = partial(self._run_listener, host, port, context, cert)
            try:
                try:
                    new = await self._nursery.start(start)
                except OSError as exc:
                    if old is None or exc.errno != errno.EADDRINUSE:
                        raise
                    # the port may be the old listener's own (another host, same port):
                    # free it, and bind the old address again if the new one still fails
                    await self._stop(old)
                    self.listener = old = None
                    try:
                        new = await self._nursery.start(start)
                    except OSError:
                        self.listener = await self._nursery.start(
                            partial(self._run_listener, *split_listen(configured), context, cert)
                        )
                        raise
            except OSError as exc:
                raise UsageError(
                    f"cannot listen for share links on {wanted}: {exc.strerror or exc}"
                ) from exc
            self.listener = new
            if old is not None:
                await self._stop(old)
            remembered = new.address if port == 0 else wanted
            await self._thread(self.store.set_setting, LISTEN_KEY, remembered)
            self.error = ""
            log.info(
                "share links served at https://%s/ (certificate SHA-256 %s)",
                new.address,
                cert.fingerprint,
            )
            warning = exposure_warning(host, new.address)
            if warning:
                log.warning("%s", warning)
            return new

    @staticmethod
    async def _stop(listener: Listener) -> None:
        listener.scope.cancel()
        await listener.done.wait()

    async def _run_listener(
        self,
        host: str,
        port: int,
        context: Any,
        cert: Certificate,
        task_status: trio.TaskStatus[Listener],
    ) -> None:
        done = trio.Event()
        made: list[Listener] = []

        def make(address: str) -> Listener:
            made.append(Listener(address, cert, scope, done))
            return made[0]

        try:
            with trio.CancelScope() as scope:
                await serve_tls(
                    self.app, host, port, context, task_status=_Started(task_status, make)
                )
        except Exception as exc:
            if not made:
                raise  # not bound: the caller of nursery.start gets the error
            # a listener that fails later must not end the node: links go offline, logged
            self.error = f"the link listener stopped: {exc}"
            log.exception("share link listener on %s failed", made[0].address)
            if self.listener is made[0]:
                self.listener = None
        finally:
            done.set()

    # ---- links ---------------------------------------------------------------------
    def _check_target(self, folder: str, path: str) -> None:
        root = self.folder_root(folder)
        if root is None:
            raise NotFoundError(f"folder {folder!r} does not exist")
        ignore = Ignore.load(root)
        paths.check_name(path, ignore)
        root_fd = paths.open_root(root)
        try:
            fd = paths.open_inside(root_fd, path)
        finally:
            os.close(root_fd)
        os.close(fd)

    async def create(
        self,
        *,
        folder: str,
        path: str = "",
        expires_in: float | None = None,
        password: str | None = None,
        max_downloads: int | None = None,
        listen: str | None = None,
        public_url: str | None = None,
    ) -> dict[str, Any]:
        path = path.strip("/")
        if expires_in is not None and expires_in <= 0:
            raise UsageError("the expiry must be in the future")
        if max_downloads is not None and max_downloads < 1:
            raise UsageError("--max-downloads must be at least 1")
        if password is not None and not password:
            raise UsageError("the password must not be empty")
        if listen is not None:
            split_listen(listen)
        await self._thread(self._check_target, folder, path)
        if public_url is not None:
            await self._thread(self.store.set_setting, PUBLIC_URL_KEY, public_url.rstrip("/"))
        hashed = await self._thread(hash_password, password) if password is not None else None
        listener = await self.ensure_listening(listen)  # a bind failure stores no link
        now = self.clock()
        link: Link = await self._thread(
            lambda: self.store.create(
                folder=folder,
                path=path,
                now=now,
                expires=None if expires_in is None else now + expires_in,
                password_hash=hashed,
                max_downloads=max_downloads,
            )
        )
        return await self._view(link, listener)

    async def revoke(self, ref: str) -> dict[str, Any]:
        link: Link = await self._thread(self.store.revoke, ref, self.clock())
        self.app.revoked.add(link.id)  # downloads under way stop at their next chunk
        log.info("share link %s revoked", link.id)
        return await self._view(link, self.listener)

    async def links(self, downloads: int = 20) -> dict[str, Any]:
        items = await self._thread(self.store.links)
        views = [await self._view(link, self.listener, downloads) for link in items]
        return {"listener": self.listener_view(), "links": views}

    def listener_view(self) -> dict[str, Any]:
        listener = self.listener
        if listener is None:
            return {"running": False, "address": None, "fingerprint": None, "error": self.error}
        host, _ = split_listen(listener.address)
        return {
            "running": True,
            "address": listener.address,
            "fingerprint": listener.certificate.fingerprint,
            "certificate": str(listener.certificate.cert_path),
            "warning": exposure_warning(host, listener.address),
            "error": "",
        }

    async def _view(
        self, link: Link, listener: Listener | None, downloads: int = 20
    ) -> dict[str, Any]:
        data = link.public(self.clock())
        public = await self._thread(self.store.setting, PUBLIC_URL_KEY)
        if listener is not None:
            address: str | None = listener.address
        else:
            address = await self._thread(remembered_address, self.store)
        data["url"] = link_url(link, public, address)
        log_rows = await self._thread(self.store.downloads, link.id, downloads)
        data["recent_downloads"] = [d.__dict__ for d in log_rows]
        return data


def remembered_address(store: LinkStore) -> str | None:
    """The address the listener bound last (or is set to bind), if its port is known."""
    listen = store.setting(LISTEN_KEY)
    return None if listen is None or listen.endswith(":0") else listen


def link_url(link: Link, public_url: str | None, address: str | None) -> str | None:
    """The link's URL: on ``public_url`` if set, else on the bound address (a wildcard
    address replaced by this machine's host name)."""
    if public_url:
        base = public_url
    elif address:
        host, port = split_listen(address)
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    else:
        return None
    return f"{base}/s/{quote(link.token)}/"


class _Started:
    """Reports a Listener built from the bound address when serve_tls is ready."""

    def __init__(self, task_status: trio.TaskStatus[Listener], make: Callable[[str], Listener]):
        self.task_status = task_status
        self.make = make

    def started(self, value: Any = None) -> None:
        self.task_status.started(self.make(str(value)))


class LinkHost(Protocol):
    """What the link service needs from the node: its home and its folders."""

    @property
    def home(self) -> Path: ...
    @property
    def config(self) -> Config: ...


async def serve_links(
    node: LinkHost,
    *,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[LinkManager] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The node's share links until cancelled; reports the LinkManager when ready."""

    def folder_root(folder_id: str) -> Path | None:
        fc = node.config.folder(folder_id)
        return None if fc is None else Path(fc.resolved_path)

    async with trio.open_nursery() as nursery:
        manager = LinkManager(node.home, folder_root, nursery, clock=clock)
        await manager.start_if_needed()
        task_status.started(manager)
        await trio.sleep_forever()
