"""A running node: its folders and its config, applied without a restart.

Built, fully, by the wiring (``wiring.serve_node``) from parts it built before; the node
starts and stops folder runners in its nursery and makes the running parts follow config
edits (the API's, the model's through ``ConfigEdits``, the user's in config.toml).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .config import CONFIG_FILE, Config, FolderConfig, load_config, save_config
from .discovery.cache import AddressCache
from .errors import ConfigError
from .events import EventLog
from .folder_paths import blocked_folders
from .history.service import HistoryService
from .identity import DeviceID, Identity
from .index.store import IndexStore
from .links.service import LinkManager
from .net.manager import ConnectionManager
from .pending import PendingStore
from .reload import restart_needed
from .services import RunningDiscovery, apply_network_changes
from .sync.exchange import SyncModel
from .sync.folder import FolderRunner

if TYPE_CHECKING:  # optional modules, imported when discovery starts (services.py)
    from .discovery.global_client import GlobalDiscovery
    from .discovery.local_v4 import LocalDiscoveryV4
    from .discovery.mdns import MdnsDiscovery

log = logging.getLogger("p2psync.app")

CONFIG_POLL_INTERVAL = 1.0


@dataclass
class ConfigHolder:
    """The config the node runs with. Parts built before the node read it through
    ``get``; the node replaces it when a change is applied."""

    config: Config
    running: Config  # what is bound now (listen, discovery: reload.py)
    mtime: int = 0  # config.toml's mtime_ns when last read (0: not read)
    error: str = ""  # why config.toml on disk is not applied ("" when it is)
    lock: trio.Lock = field(default_factory=trio.Lock)  # one config change at a time

    def get(self) -> Config:
        return self.config


@dataclass
class Node:
    """A running node's services, for the control API and for tests."""

    home: Path
    identity: Identity
    settings: ConfigHolder
    index: IndexStore
    events: EventLog
    pending: PendingStore
    cache: AddressCache
    model: SyncModel
    connections: ConnectionManager
    discovery: RunningDiscovery
    nursery: trio.Nursery  # the node's: folder runners and live-restarted services run here
    build_runner: Callable[[FolderConfig], FolderRunner]  # the wiring's one call site
    started_at: float = 0.0
    api_address: str | None = None
    links: LinkManager | None = None  # the share links (p2psync/links), once started
    history: HistoryService | None = None  # the change log (its .log None while it is off)
    folder_scopes: dict[str, trio.CancelScope] = field(default_factory=dict)
    folder_done: dict[str, trio.Event] = field(default_factory=dict)

    @property
    def device_id(self) -> DeviceID:
        return self.identity.device_id

    # ---- the config, as the API and tests read it ----------------------------------
    @property
    def config(self) -> Config:
        return self.settings.config

    @config.setter
    def config(self, value: Config) -> None:
        self.settings.config = value

    @property
    def running_config(self) -> Config:
        return self.settings.running

    @running_config.setter
    def running_config(self, value: Config) -> None:
        self.settings.running = value

    @property
    def config_error(self) -> str:
        return self.settings.error

    @config_error.setter
    def config_error(self, value: str) -> None:
        self.settings.error = value

    @property
    def config_lock(self) -> trio.Lock:
        return self.settings.lock

    # ---- discovery running now -----------------------------------------------------
    @property
    def mdns(self) -> MdnsDiscovery | None:
        return self.discovery.mdns

    @property
    def global_discovery(self) -> GlobalDiscovery | None:
        return self.discovery.global_discovery

    @property
    def local_discovery(self) -> LocalDiscoveryV4 | None:  # Syncthing local discovery v4
        return self.discovery.local_discovery

    # ---- folders -------------------------------------------------------------------
    async def start_folder(self, fc: FolderConfig) -> FolderRunner:
        runner = self.build_runner(fc)
        runner.set_blocked(blocked_folders(self.config, self.home).get(fc.id, ""))
        self.model.folders[fc.id] = runner
        scope = trio.CancelScope()
        done = trio.Event()
        await self.nursery.start(_run_cancellable, runner.run, scope, done)
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
            before = {(f.id, f.type) for f in old.folders if device in f.devices}
            after = {(f.id, f.type) for f in new.folders if device in f.devices}
            dc = new.device(device)
            if dc is None or dc.paused:
                await active.peer.close("device removed or paused")
            elif before != after:
                await self.model.resend_cluster_config(device)
        self.connections.apply_rate_limits()
        await apply_network_changes(self, self.nursery)
        if self.global_discovery is not None:
            self.global_discovery.notify_lookup_needed()
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

    async def serve_config_watch(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply config.toml's edits (polled every CONFIG_POLL_INTERVAL) until cancelled."""
        path = self.home / CONFIG_FILE
        failing = False  # reading the file failed (e.g. out of file handles): logged once
        task_status.started()
        while True:
            await trio.sleep(CONFIG_POLL_INTERVAL)
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if mtime == self.settings.mtime:
                continue
            self.settings.mtime = mtime
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
                self.settings.mtime = 0
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
            pending.remove_folder(fc.id, str(device))


async def _run_cancellable(
    fn: Callable[..., Awaitable[object]],
    scope: trio.CancelScope,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    """Run the service ``fn`` inside ``scope`` (the starter cancels it to stop it) and
    set ``done`` when it has ended; reports started when ``fn`` does."""
    try:
        with scope:
            await fn(task_status=task_status)
    finally:
        done.set()
