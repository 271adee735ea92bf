"""Builds every service of a node and runs them in one nursery; nothing else.

Order: identity and config → index → model and folders → connections → discovery →
control API. Each service is started with ``nursery.start`` so readiness is explicit.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from . import __version__
from .config import (
    CONFIG_FILE,
    Config,
    FolderConfig,
    blocked_folders,
    load_config,
    save_config,
)
from .discovery.cache import AddressCache
from .errors import ConfigError, IndexCorruptError
from .events import EventLog
from .homelock import HomeLock, lock_home
from .identity import DeviceID, Identity, load_or_create_identity
from .index.store import IndexStore
from .net.manager import ConnectionManager
from .oslimits import raise_open_file_limit
from .pending import PendingStore
from .reload import restart_needed
from .sync.folder import FolderRunner, drop_partials_on_full_disk
from .sync.folder_build import build_folder
from .sync.model import SyncModel

log = logging.getLogger("p2psync.app")

INDEX_FILE = "index.sqlite3"
CONFIG_POLL_INTERVAL = 1.0


@dataclass
class Node:
    """A running node's services, for the control API and for tests."""

    home: Path
    identity: Identity
    config: Config
    index: IndexStore
    events: EventLog
    pending: PendingStore
    cache: AddressCache
    model: SyncModel
    connections: ConnectionManager
    started_at: float = 0.0
    mdns: object | None = None
    global_discovery: object | None = None
    local_discovery: object | None = None  # Syncthing local discovery v4
    api_address: str | None = None
    folder_scopes: dict[str, trio.CancelScope] = field(default_factory=dict)
    folder_done: dict[str, trio.Event] = field(default_factory=dict)
    _nursery: trio.Nursery | None = None
    _config_mtime: int = 0
    config_error: str = ""  # why config.toml on disk is not applied ("" when it is)
    config_lock: trio.Lock = field(default_factory=trio.Lock)  # one config change at a time
    running_config: Config = field(default_factory=Config)  # what is bound now (reload.py)
    discovery_handles: list[tuple[trio.CancelScope, trio.Event]] = field(default_factory=list)

    @property
    def device_id(self) -> DeviceID:
        return self.identity.device_id

    def get_config(self) -> Config:
        return self.config

    # ---- folders -------------------------------------------------------------------
    async def start_folder(self, fc: FolderConfig) -> FolderRunner:
        assert self._nursery is not None
        runner = build_folder(
            fc,
            index=self.index,
            local=self.device_id,
            db_limiter=self.model.limiter,
            sources_for=self.model.sources_for,
            sources_for_many=self.model.sources_for_many,
            events=self.events,
            on_index_reset=self.model.announce_index_reset,
        )
        runner.set_blocked(blocked_folders(self.config, self.home).get(fc.id, ""))
        self.model.folders[fc.id] = runner
        done = trio.Event()
        scope = await self._nursery.start(_run_cancellable, runner.run, done)
        self.folder_scopes[fc.id] = scope
        self.folder_done[fc.id] = done
        return runner

    def stop_folder(self, folder_id: str) -> None:
        scope = self.folder_scopes.pop(folder_id, None)
        if scope is not None:
            scope.cancel()
        self.model.folders.pop(folder_id, None)

    async def forget_folder(self, folder_id: str) -> None:
        """Stop the folder and drop its index, local and peers' entries and index IDs:
        a folder added again with this ID (at any path) starts from the cluster's state
        instead of an index that no longer describes its disk."""
        self.stop_folder(folder_id)
        done = self.folder_done.pop(folder_id, None)
        if done is not None:
            await done.wait()  # no write of the old runner may land after the drop
        await trio.to_thread.run_sync(self.index.drop_folder, folder_id)
        log.info("%s: folder removed; its index is forgotten", folder_id)

    # ---- config reload -------------------------------------------------------------
    async def apply_config(self, new: Config) -> None:
        """Make the running node match ``new`` without a restart."""
        old = self.config
        self.config = new
        for fc in old.folders:
            nfc = new.folder(fc.id)
            if nfc is None or nfc.path != fc.path:
                await self.forget_folder(fc.id)
        blocked = blocked_folders(new, self.home)
        for fc in new.folders:
            runner = self.model.folders.get(fc.id)
            if runner is None:
                await self.start_folder(fc)
                continue
            runner.update_config(fc)
            runner.set_blocked(blocked.get(fc.id, ""))
        await trio.to_thread.run_sync(_clear_answered_offers, self.pending, old, new)
        # Sharing changed for a device: reconnect it so both sides exchange ClusterConfigs again.
        for device, active in list(self.connections.active.items()):
            before = {(f.id, f.type) for f in old.folders if str(device) in f.devices}
            after = {(f.id, f.type) for f in new.folders if str(device) in f.devices}
            dc = new.device(device)
            if dc is None or dc.paused:
                await active.peer.close("device removed or paused")
            elif before != after:
                await self.model.resend_cluster_config(device)
        self.connections.apply_rate_limits()
        if self._nursery is not None:
            from .services import apply_network_changes

            await apply_network_changes(self, self._nursery)
        if self.global_discovery is not None:
            self.global_discovery.notify_lookup_needed()  # type: ignore[attr-defined]
        self.connections.wake_dialer()
        self.events.emit("ConfigSaved")

    async def change_config(
        self, edit: Callable[[Config], Config], prepare: Callable[[], None] | None = None
    ) -> Config:
        """Apply ``edit`` to the current config: ``prepare`` (blocking, e.g. create the
        folder's directory), save atomically, then apply to the running node. The API's
        changes and the model's (an introducer's devices) all come through here."""
        async with self.config_lock:
            await self._adopt_file_on_disk()
            new = edit(self.config)
            if prepare is not None:
                await trio.to_thread.run_sync(prepare)
            if new != self.config:
                await trio.to_thread.run_sync(save_config, new, self.home)
                await self.apply_config(new)
            return new

    async def _adopt_file_on_disk(self) -> None:
        """Never overwrite the user's edits: refuse while config.toml is invalid, and
        apply a valid hand edit the poller has not picked up yet before editing on top."""
        try:
            on_disk = await trio.to_thread.run_sync(load_config, self.home)
        except ConfigError as exc:
            self.config_error = str(exc)
            raise ConfigError(
                f"not saved: config.toml is invalid, fix it first (the daemon runs with the "
                f"last good config until then): {exc}"
            ) from None
        self.config_error = ""
        if on_disk != self.config:
            await self.apply_config(on_disk)

    async def reload_config(self) -> None:
        new = await trio.to_thread.run_sync(load_config, self.home)
        if self.config_error:
            log.info("config.toml is valid again")
        self.config_error = ""
        if new != self.config:
            log.info("configuration changed; applying")
            await self.apply_config(new)
            later = restart_needed(self.running_config, new)
            if later:
                log.warning(
                    "configuration applied except %s, which take(s) effect after a restart",
                    ", ".join(later),
                )
            else:
                log.info("configuration applied (all of it, no restart needed)")

    async def _watch_config(self) -> None:
        path = self.home / CONFIG_FILE
        failing = False  # reading the file failed (e.g. out of file handles): logged once
        while True:
            await trio.sleep(CONFIG_POLL_INTERVAL)
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if mtime == self._config_mtime:
                continue
            self._config_mtime = mtime
            try:
                await self.reload_config()
            except ConfigError as exc:
                self.config_error = str(exc)
                log.error(
                    "not applying the edited config (running with the last good one; API "
                    "changes are refused until it is fixed): %s",
                    exc,
                )
            except OSError as exc:  # not read: try again at the next poll
                self._config_mtime = 0
                if not failing:
                    log.error("cannot read the edited config (%s); trying again", exc)
                failing = True
            else:
                failing = False


def _clear_answered_offers(pending: PendingStore, old: Config, new: Config) -> None:
    """A folder now shared with a device answers that device's offer of it."""
    for fc in new.folders:
        before = old.folder(fc.id)
        for device in set(fc.devices) - set(before.devices if before else ()):
            pending.remove_folder(fc.id, device)


async def _run_cancellable(
    fn: Callable[..., object],
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[trio.CancelScope],
) -> None:
    try:
        with trio.CancelScope() as scope:
            await fn(task_status=_Relay(task_status, scope))  # type: ignore[misc]
    finally:
        done.set()


class _Relay:
    """Passes ``scope`` to the starter when the wrapped service reports ready."""

    def __init__(
        self, task_status: trio.TaskStatus[trio.CancelScope], scope: trio.CancelScope
    ) -> None:
        self._task_status = task_status
        self._scope = scope

    def started(self, value: object = None) -> None:
        self._task_status.started(self._scope)


async def serve_node(
    home: Path,
    *,
    home_lock: HomeLock | None = None,
    task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one node until cancelled; ``task_status.started(node)`` once it listens.

    The home is locked first (``home_lock`` when the caller already holds it), so a
    second node on the same home stops before opening anything."""
    if home_lock is not None:
        await _serve_locked_node(home, task_status)
        return
    with await trio.to_thread.run_sync(lock_home, home):
        await _serve_locked_node(home, task_status)


async def _serve_locked_node(home: Path, task_status: trio.TaskStatus[Node]) -> None:
    identity, created = await trio.to_thread.run_sync(load_or_create_identity, home)
    config = await trio.to_thread.run_sync(load_config, home)
    if created:
        log.info("generated a new identity")
    log.info(
        "p2psync %s starting: device %s (%s), home %s",
        __version__,
        identity.device_id,
        config.name,
        home,
    )
    await trio.to_thread.run_sync(drop_partials_on_full_disk, home, config.folders)
    index = await trio.to_thread.run_sync(open_index, home, identity.device_id.raw)
    try:
        await trio.to_thread.run_sync(forget_removed_folders, index, config)
        events = EventLog()
        pending = PendingStore(home)
        cache = AddressCache()
        node_ref: list[Node] = []
        model = SyncModel(
            local=identity.device_id,
            get_config=lambda: node_ref[0].config,
            index=index,
            db_limiter=trio.CapacityLimiter(4),
            pending=pending,
            events=events,
            change_config=lambda edit: node_ref[0].change_config(edit),
        )
        connections = ConnectionManager(
            identity=identity,
            get_config=lambda: node_ref[0].config,
            cache=cache,
            pending=pending,
            events=events,
            serve_peer=model.serve_peer,
        )
        node = Node(
            home,
            identity,
            config,
            index,
            events,
            pending,
            cache,
            model,
            connections,
            started_at=trio.current_time(),
            running_config=config,
        )
        node_ref.append(node)
        try:
            node._config_mtime = (home / CONFIG_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            pass
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            for fc in config.folders:
                await node.start_folder(fc)
            await nursery.start(connections.run)
            await _start_optional_services(node, nursery)
            nursery.start_soon(node._watch_config)
            log.info(
                "ready: device %s listening on %s",
                identity.device_id,
                ", ".join(connections.listen_addresses),
            )
            task_status.started(node)
            await trio.sleep_forever()
    finally:
        await trio.to_thread.run_sync(index.close)


def open_index(home: Path, local_device: bytes) -> IndexStore:
    """Open the index; if it is corrupt or unreadable, set it aside and start a new one.

    Nothing is lost by rebuilding: the next scan re-reads the folders from disk and peers
    resend their indexes (the new index ID tells them to). Versions of files that exist
    on disk come back with fresh version vectors, which conflict with — never silently
    lose to — what peers hold.
    """
    path = home / INDEX_FILE
    try:
        return IndexStore.open(path, local_device)
    except IndexCorruptError as exc:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log.error("index database unusable (%s); moving it aside and rebuilding", exc)
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                old.rename(old.with_name(f"{old.name}.corrupt-{stamp}"))
        return IndexStore.open(path, local_device)


def forget_removed_folders(index: IndexStore, config: Config) -> None:
    """Drop the index of folders removed from the config while the daemon was stopped
    (``folder remove`` without a daemon edits only the config)."""
    for folder_id in index.folders():
        if config.folder(folder_id) is None:
            index.drop_folder(folder_id)
            log.info("%s: folder no longer configured; its index is forgotten", folder_id)


async def _start_optional_services(node: Node, nursery: trio.Nursery) -> None:
    """Discovery and the control API, when their modules and config ask for them."""
    from .services import start_services

    await start_services(node, nursery)


def _raise_open_file_limit() -> None:
    files = raise_open_file_limit()
    if files.after > files.before:
        log.info("open-file limit raised from %d to %d", files.before, files.after)
    elif files.after >= 0:
        hard = "unlimited" if files.hard < 0 else str(files.hard)
        log.info("open-file limit %d (hard limit %s)", files.after, hard)


async def run_daemon(home: Path, home_lock: HomeLock | None = None) -> None:
    """The daemon's main: run the node until SIGINT or SIGTERM, then shut down cleanly."""
    _raise_open_file_limit()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_node, home, home_lock=home_lock))
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("stopped")
