"""Announcement stores: in memory (optionally snapshotted to SQLite) or Redis.

``open_store(spec, ...)`` picks one from the ``--store`` value and runs its upkeep
(expiry sweeps, snapshots) for as long as it is open.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from p2psync.errors import ConfigError

from .base import Record, Store, StoreUnavailableError
from .memory import MemoryStore, load_snapshot, save_snapshot
from .redis_store import RedisStore

__all__ = ["MemoryStore", "Record", "RedisStore", "Store", "StoreUnavailableError", "open_store"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_store(
    spec: str,
    *,
    clock: Callable[[], float],
    sweep_interval: float = 60.0,
    redis_prefix: str | None = None,
) -> AsyncIterator[Store]:
    """``memory``, ``PATH`` (memory + SQLite snapshot every ``sweep_interval`` s and on
    close) or ``redis://HOST:PORT/DB``. Raises ConfigError if the store cannot be opened."""
    sqlite_limiter = trio.CapacityLimiter(1)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        store: Store = await _open_redis(spec, redis_prefix)
        snapshot_path = None
    elif spec == "memory":
        store, snapshot_path = MemoryStore(), None
    else:
        snapshot_path = Path(spec)
        try:
            snapshot = await trio.to_thread.run_sync(
                load_snapshot, snapshot_path, limiter=sqlite_limiter
            )
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the store snapshot {snapshot_path}: {exc}") from exc
        store = MemoryStore(snapshot)
        log.info("loaded %d devices from %s", len(snapshot.devices), snapshot_path)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_upkeep, store, snapshot_path, clock, sweep_interval, sqlite_limiter)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if snapshot_path is not None and isinstance(store, MemoryStore):
                await _save(store, snapshot_path, sqlite_limiter)
            await store.aclose()


async def _open_redis(url: str, prefix: str | None) -> RedisStore:
    try:
        store = (
            RedisStore.from_url(url) if prefix is None else RedisStore.from_url(url, prefix=prefix)
        )
        await store.ping()
    except (StoreUnavailableError, ValueError) as exc:
        raise ConfigError(f"cannot use the Redis store {url}: {exc}") from exc
    return store


async def _upkeep(
    store: Store,
    snapshot_path: Path | None,
    clock: Callable[[], float],
    interval: float,
    sqlite_limiter: trio.CapacityLimiter,
) -> None:
    while True:
        await trio.sleep(interval)
        try:
            removed = await store.expire(clock())
            if removed:
                log.debug("expired %d devices", removed)
        except StoreUnavailableError as exc:
            log.warning("store expiry sweep failed: %s", exc)
        if snapshot_path is not None and isinstance(store, MemoryStore):
            await _save(store, snapshot_path, sqlite_limiter)


async def _save(store: MemoryStore, path: Path, limiter: trio.CapacityLimiter) -> None:
    try:
        await trio.to_thread.run_sync(save_snapshot, path, store.snapshot(), limiter=limiter)
    except (sqlite3.Error, OSError) as exc:
        log.warning("cannot write the store snapshot %s: %s", path, exc)
