"""The wiring point: builds every part of a node and runs them in one nursery; nothing else.

Order: identity and config → index → config holder, events, pending store, address
cache, the model, relays, connections (each given what it needs at construction) → the
node (``node.py``) → config edits, folders, connections, discovery, control API, the
config watcher. Each service is started with ``nursery.start`` so readiness is explicit.
"""

from __future__ import annotations

import logging
import signal
import time
from functools import partial
from pathlib import Path

import trio

from . import __version__
from .allocator import keep_freed_memory
from .config import CONFIG_FILE, Config, FolderConfig, load_config
from .config_edits import ConfigEdits
from .discovery.cache import AddressCache
from .errors import IndexCorruptError
from .events import EventLog
from .history.log import HISTORY_FILE, HistoryLog, Retention
from .history.service import HistoryService
from .homelock import HomeLock, lock_home
from .identity import load_or_create_identity
from .index.store import IndexStore, LocalChangeObserver
from .links.service import serve_links
from .net.listeners import open_listeners_announced
from .net.manager import ConnectionManager
from .net.relay_service import RelayService
from .node import ConfigHolder, Node
from .oslimits import raise_open_file_limit
from .pending import PendingStore
from .services import RunningDiscovery, start_api, start_discovery
from .sync.exchange import SyncModel
from .sync.folder import FolderRunner, drop_partials_on_full_disk
from .sync.folder_build import build_folder

__all__ = ["INDEX_FILE", "Node", "forget_removed_folders", "open_index", "run_daemon", "serve_node"]

log = logging.getLogger("p2psync.app")

INDEX_FILE = "index.sqlite3"


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
    """The wiring point: every node-level part is built here, with what it needs passed
    in, and started in the node's nursery in the order the node depends on them."""
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
    settings = ConfigHolder(config, running=config, mtime=_config_mtime(home))
    history = HistoryService(
        partial(HistoryLog.open, home / HISTORY_FILE), partial(_retention, settings)
    )
    index = await trio.to_thread.run_sync(
        partial(open_index, home, identity.device_id.raw, on_local_change=history.note_threadsafe)
    )
    try:
        await trio.to_thread.run_sync(forget_removed_folders, index, config)
        events = EventLog()
        pending = PendingStore(home)
        cache = AddressCache()
        discovery = RunningDiscovery()  # filled as discovery starts (services.py)
        config_edits = ConfigEdits()  # the model's edits, applied by the node
        model = SyncModel(
            local=identity.device_id,
            get_config=settings.get,
            index=index,
            db_limiter=trio.CapacityLimiter(4),
            pending=pending,
            events=events,
            change_config=config_edits.change,
        )
        relays = RelayService(
            identity, lambda: settings.config.relays, on_change=discovery.addresses_changed
        )
        connections = ConnectionManager(
            identity=identity,
            get_config=settings.get,
            cache=cache,
            pending=pending,
            events=events,
            serve_peer=model.serve_peer,
            relays=relays,
            on_disconnected=discovery.device_disconnected,
        )
        async with trio.open_nursery() as nursery:
            node = Node(
                home,
                identity,
                settings,
                index,
                events,
                pending,
                cache,
                model,
                connections,
                discovery,
                nursery=nursery,
                build_runner=partial(
                    build_folder_runner, index=index, model=model, events=events, history=history
                ),
                started_at=trio.current_time(),
                history=history,
            )
            await nursery.start(history.serve)
            await nursery.start(config_edits.serve, node.change_config)
            for fc in config.folders:
                await node.start_folder(fc)
            listeners, announce = await open_listeners_announced(settings.config.listen)
            await nursery.start(connections.serve, listeners, announce)
            await start_discovery(node, nursery)
            node.links = await nursery.start(serve_links, node)  # listener off until a link
            await start_api(node, nursery)
            await nursery.start(node.serve_config_watch)
            log.info(
                "ready: device %s listening on %s",
                identity.device_id,
                ", ".join(connections.listen_addresses),
            )
            task_status.started(node)
            await trio.sleep_forever()
    finally:
        await trio.to_thread.run_sync(index.close)


def _retention(settings: ConfigHolder) -> dict[str, Retention]:
    """Each folder's history retention, read at each prune (a changed setting applies)."""
    return {
        fc.id: Retention(fc.history_days, fc.history_max_entries) for fc in settings.config.folders
    }


def build_folder_runner(
    fc: FolderConfig,
    *,
    index: IndexStore,
    model: SyncModel,
    events: EventLog,
    history: HistoryService | None = None,
) -> FolderRunner:
    """The one place a folder's runner is built, with its collaborators passed in."""
    return build_folder(
        fc,
        index=index,
        local=model.local,
        db_limiter=model.limiter,
        sources_for=model.sources_for,
        sources_for_many=model.sources_for_many,
        events=events,
        on_index_reset=model.announce_index_reset,
        change_config=model.change_config,  # a selected directory renamed here
        on_refused=history.note_refused if history is not None else None,  # send-only
    )


def _config_mtime(home: Path) -> int:
    try:
        return (home / CONFIG_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def open_index(
    home: Path, local_device: bytes, on_local_change: LocalChangeObserver | None = None
) -> IndexStore:
    """Open the index; if it is corrupt or unreadable, set it aside and start a new one.

    Nothing is lost by rebuilding: the next scan re-reads the folders from disk and peers
    resend their indexes (the new index ID tells them to). Versions of files that exist
    on disk come back with fresh version vectors, which conflict with — never silently
    lose to — what peers hold.
    """
    path = home / INDEX_FILE
    try:
        return IndexStore.open(path, local_device, on_local_change=on_local_change)
    except IndexCorruptError as exc:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log.error("index database unusable (%s); moving it aside and rebuilding", exc)
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                old.rename(old.with_name(f"{old.name}.corrupt-{stamp}"))
        return IndexStore.open(path, local_device, on_local_change=on_local_change)


def forget_removed_folders(index: IndexStore, config: Config) -> None:
    """Drop the index of folders removed from the config while the daemon was stopped
    (``folder remove`` without a daemon edits only the config)."""
    for folder_id in index.folders():
        if config.folder(folder_id) is None:
            index.drop_folder(folder_id)
            log.info("%s: folder no longer configured; its index is forgotten", folder_id)


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
    tuning = keep_freed_memory()
    if not tuning.applied:
        log.info("allocator thresholds left as they are: %s", tuning.reason)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_node, home, home_lock=home_lock))
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("stopped")
