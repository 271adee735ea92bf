"""The one service layer for CLI work done on the node home itself, without the daemon.

Commands that talk to a running daemon use its API client (``Context.daemon``); what
they do when none runs, and what never needs the daemon (``init``, ``id``, ``run``,
``log``, pending offers, archived versions, ignore checks, the web password), goes
through :class:`OfflineNode`. Command modules therefore never import the versioner,
the filesystem, the scanner, the identity store or the config file functions; heavy
modules are imported only by the method that needs them, which keeps `p2psync run` lean.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.auth import ensure_api_key
from ..config import (
    CONFIG_FILE,
    Config,
    FolderConfig,
    argument_errors,
    load_config,
    parse_listen_address,
    save_config,
    validate_host_port,
)
from ..errors import ConfigError, NotFoundError, P2PSyncError, UsageError
from ..folder_paths import folder_path_problem
from ..identity import DeviceID, load_identity, load_or_create_identity
from ..logsetup import LOG_FILE
from ..pending import PendingDevice, PendingFolder, PendingStore

if TYPE_CHECKING:
    from ..scanner.ignore import Match


@dataclass(frozen=True, slots=True)
class IgnoreVerdict:
    """Which pattern, if any, decides whether ``name`` is ignored."""

    name: str
    match: Match | None


class OfflineNode:
    """A node home (config, identity, pending offers, folders on disk), worked on
    directly: with no daemon running, or for state the daemon never holds."""

    def __init__(self, home: Path) -> None:
        self.home = home

    # ---- config and identity ---------------------------------------------------------

    def has_config(self) -> bool:
        return (self.home / CONFIG_FILE).exists()

    def load_config(self) -> Config:
        return load_config(self.home)

    def save_config(self, cfg: Config) -> None:
        save_config(cfg, self.home)

    def own_id(self) -> DeviceID:
        return load_identity(self.home).device_id

    def init(
        self,
        *,
        name: str | None,
        listen: tuple[str, ...],
        api: str | None,
        mdns: bool,
        default_folder_path: str | None,
    ) -> DeviceID:
        """Create the identity (an existing one is kept), the config and the API key;
        ``default_folder_path`` None means no default folder."""
        if self.has_config():
            raise UsageError(f"{self.home} is already initialised (device {self.own_id()})")
        identity, _created = load_or_create_identity(self.home)
        cfg = Config()
        if name:
            cfg = replace(cfg, name=name)
        if listen:
            with argument_errors():
                parsed = tuple(
                    parse_listen_address(text, f"--listen[{i}]") for i, text in enumerate(listen)
                )
            cfg = replace(cfg, listen=parsed)
        if api:
            with argument_errors():
                cfg = replace(cfg, api=validate_host_port(api, "--api"))
        if not mdns:
            cfg = replace(cfg, discovery=replace(cfg.discovery, mdns=False))
        if default_folder_path is not None:
            problem = folder_path_problem(cfg, default_folder_path, self.home)
            if problem is not None:
                raise UsageError(f"--default-folder-path: {problem}")
            cfg = cfg.with_folder(
                FolderConfig(id="default", label="Default Folder", path=default_folder_path)
            )
        self.save_config(cfg)
        ensure_api_key(self.home)
        return identity.device_id

    # ---- the daemon in the foreground, its log ------------------------------------------

    def run_daemon(self, *, verbose: bool) -> None:
        """Run the daemon in this process until SIGINT/SIGTERM."""
        import trio

        from ..homelock import lock_home
        from ..logsetup import dump_stacks_on_sigusr1, setup_logging
        from ..wiring import run_daemon

        if not self.has_config():
            raise ConfigError(f"no config at {self.home / 'config.toml'}; run `p2psync init` first")
        # One daemon per home: locked before the log, keys or index are opened.
        with lock_home(self.home) as home_lock:
            setup_logging(self.home, logging.DEBUG if verbose else logging.INFO)
            dump_stacks_on_sigusr1()
            ensure_api_key(self.home)
            trio.run(run_daemon, self.home, home_lock)

    @property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    def log_lines(self) -> list[str]:
        path = self.log_path
        try:
            return path.read_text("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            raise NotFoundError(f"no log yet at {path} (the daemon has not run)") from None

    # ---- folders and devices, pending offers ---------------------------------------------

    def add_folder(self, cfg: Config, new: FolderConfig, path: Path) -> None:
        """Create the folder's directory, save ``cfg`` with ``new`` and drop its offer."""
        path.mkdir(parents=True, exist_ok=True)
        self.save_config(cfg.with_folder(new))
        PendingStore(self.home).remove_folder(new.id)

    def pending_folders(self) -> list[PendingFolder]:
        return PendingStore(self.home).folders()

    def pending_devices(self) -> list[PendingDevice]:
        return PendingStore(self.home).devices()

    def forget_pending_folder(self, folder_id: str) -> None:
        PendingStore(self.home).remove_folder(folder_id)

    def forget_pending_device(self, device_id: str) -> None:
        PendingStore(self.home).remove_device(device_id)

    def add_device(self, cfg: Config, device_id: str) -> None:
        """Save ``cfg`` (which trusts ``device_id``) and drop the device's pending entry."""
        self.save_config(cfg)
        PendingStore(self.home).remove_device(device_id)

    # ---- archived versions, ignore patterns --------------------------------------------

    def _versioning(self, folder_id: str) -> tuple[Any, Any, Any]:
        """(versioner module, folder filesystem, versioner) for folder ``folder_id``."""
        from ..fs.basic import BasicFS
        from ..sync import versioner as module

        fc = self.load_config().folder(folder_id)
        if fc is None:
            raise NotFoundError(f"folder {folder_id!r} does not exist")
        fs = BasicFS(fc.resolved_path)
        return module, fs, module.make_versioner(fs, fc.versioning)

    def list_versions(self, folder_id: str, path: str | None) -> list[dict[str, Any]]:
        """Archived versions (of ``path``, or all) in the shape the API returns."""
        module, fs, _ = self._versioning(folder_id)
        return [
            {
                "name": v.name,
                "time": v.version_time.isoformat(),
                "timestamp": v.timestamp,
                "size": v.size,
                "archive_name": v.archive_name,
            }
            for v in module.list_versions(fs, path)
        ]

    def restore_version(self, folder_id: str, path: str, when: dt.datetime | None) -> str:
        """Put an archived version of ``path`` back; returns the archive name restored."""
        module, fs, versioner = self._versioning(folder_id)
        source: str = module.restore(fs, path, when, versioner=versioner)
        return source

    @staticmethod
    def restore_point(at: str | None) -> dt.datetime | None:
        """``--at`` parsed the way the API parses it (refused the same way)."""
        from ..api.parsing import parse_time

        return parse_time(at)

    def ignore_verdict(self, cfg: Config, folder_id: str, path: str) -> IgnoreVerdict:
        from ..scanner.ignore import Ignore

        fc = cfg.folder(folder_id)
        if fc is None:
            raise NotFoundError(f"folder {folder_id!r} does not exist")
        name = path.strip("/")
        return IgnoreVerdict(name, Ignore.load(fc.resolved_path).match(name))

    # ---- the web interface's password --------------------------------------------------

    def set_web_password(self, password: str | None) -> None:
        from ..web.password import set_password

        set_password(self.home, password)

    # ---- share links (the daemon serves them; the store is readable without it) ------
    def links_view(self) -> dict[str, Any]:
        """Every link with its URL and recent downloads; the listener as not running."""
        import time

        from ..links.service import PUBLIC_URL_KEY, link_url, remembered_address
        from ..links.store import LinkStore

        store = LinkStore(self.home)
        now = time.time()
        public, listen = store.setting(PUBLIC_URL_KEY), remembered_address(store)
        links = []
        for item in store.links():
            view = item.public(now)
            view["url"] = link_url(item, public, listen)
            view["recent_downloads"] = [d.__dict__ for d in store.downloads(item.id, 20)]
            links.append(view)
        listener = {"running": False, "address": None, "fingerprint": None, "error": ""}
        return {"listener": listener, "links": links}

    def revoke_link(self, ref: str) -> dict[str, Any]:
        import time

        from ..links.store import LinkStore

        return LinkStore(self.home).revoke(ref, time.time()).public(time.time())

    # ---- change history (the daemon writes it; readable without it) -----------------
    def history(self, params: dict[str, str]) -> dict[str, Any]:
        """``GET /api/history``'s answer, read from the log on disk."""
        from ..api.history import device_names, entry_view, parse_query, search, short_of
        from ..history.log import HISTORY_FILE, HistoryLog

        query = parse_query(params)
        folder = params["folder"]
        path = query.path
        names = device_names(self.load_config(), self.own_id())
        devices = [short_of(names, query.device)] if query.device else None
        log_path = self.home / HISTORY_FILE
        rows = []
        if log_path.exists():
            with HistoryLog.open(log_path) as log:
                rows = search(log, [folder], query, devices)
        out: dict[str, Any] = {
            "folder": folder,
            "path": path,
            "entries": [{"id": i, **entry_view(c, names)} for i, c in rows],
        }
        if path:
            try:
                out["versions"] = self.list_versions(params["folder"], path)
            except P2PSyncError:
                out["versions"] = []
        return out
