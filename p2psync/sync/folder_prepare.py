"""Before each round of a folder's work: may it work at all (not blocked by the config,
its root and marker there: ``folder_root``), does its local index still describe the
disk (else it starts again from the cluster's state), and its ignore patterns."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ..scanner.ignore import Ignore, IgnoreError
from . import folder_schedule as sched
from .folder_parts import FolderParts
from .folder_root import RootGuard

log = logging.getLogger("p2psync.sync.folder")


class FolderPrepare:
    def __init__(
        self,
        parts: FolderParts,
        *,
        feed: Callable[[sched.Event], object],
        on_index_reset: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        self._parts = parts
        self.id = parts.id
        self._feed = feed  # steps the folder's schedule
        self._on_index_reset = on_index_reset
        index, local = parts.index, parts.local
        self.root = RootGuard(
            parts.config().resolved_path,
            parts.fs,
            has_files=lambda: index.max_sequence(self.id, local.raw) > 0,
            lock=parts.lock,
            local_entries=lambda: index.iter_local(self.id),
        )

    async def prepare(self, blocked: str) -> Ignore | None:
        """The ignore patterns to work with, or None: no work this round (the state
        says why). The folder root must exist and carry our marker (so an unmounted
        disk never looks like "everything was deleted")."""
        report = self._parts.report
        if blocked:
            report.set_state("error", blocked)
            return None
        check = await trio.to_thread.run_sync(self.root.check)
        if check.reason:
            report.set_state("error", check.reason)
            self._feed(sched.RetryLater())
            return None
        if self.root.recheck_local:
            why = await trio.to_thread.run_sync(
                self.root.local_index_outdated, limiter=self._parts.io_limiter
            )
            if why:
                await self._reset_local_index(why)
        try:
            return await trio.to_thread.run_sync(Ignore.load, self._parts.config().resolved_path)
        except IgnoreError as exc:
            report.set_state("error", f"bad ignore file: {exc}")
            self._feed(sched.RetryLater())
            return None

    async def _reset_local_index(self, why: str) -> None:
        """Forget this device's index of the folder (new index ID) and pull the cluster's
        state: peers drop our old entries rather than receive deletions; files still on
        disk are scanned again and match (or conflict with) what peers have."""
        log.warning(
            "%s: %s; starting again from the other devices' state (nothing is deleted elsewhere)",
            self.id,
            why,
        )
        parts = self._parts
        await parts.db(parts.index.reset_local, self.id)
        parts.server.clear_cache()
        self._feed(sched.IndexReset())
        parts.report.events.emit("FolderIndexReset", folder=self.id, reason=why)
        if self._on_index_reset is not None:
            await self._on_index_reset(self.id)
