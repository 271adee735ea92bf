"""What a folder tells the user: its shown state and the events about its items.

Holds the folder's ``FolderStatus`` (read by the API) and emits the events that go with
a change of it, so the runner and its scan and pull drivers report one way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from ..events import EventLog
from ..identity import DeviceID
from ..protocol.fileinfo import FileInfo
from ..resource_faults import describe, is_disk_full
from ..scanner.scan import ScanProgress
from .folder_status import FolderStatus
from .pull import DISK_FULL

log = logging.getLogger("p2psync.sync.folder")

# Items whose last logged failure is remembered, so that a failure repeated every pull
# round (a full disk: every needed file, every 30 s) is logged once, not until the logs
# fill what is left of the disk.
FAILURES_REMEMBERED = 10_000


class FolderReport:
    def __init__(
        self,
        folder_id: str,
        events: EventLog,
        *,
        not_synced_listed: int,
        failures_remembered: int = FAILURES_REMEMBERED,
    ) -> None:
        self.id = folder_id
        self.events = events
        self.status = FolderStatus()
        self._not_synced_listed = not_synced_listed
        self._failures_logged: dict[str, str] = {}
        self._failures_remembered = failures_remembered

    def set_state(self, state: str, reason: str = "") -> None:
        status = self.status
        if (state, reason) != (status.state, status.reason):
            status.state = state
            status.reason = reason
            self.events.emit("FolderStateChanged", folder=self.id, state=state, reason=reason)

    def note_not_synced(self, name: str, reason: str) -> None:
        """Show ``name`` as "not synced here" with ``reason`` (bounded), logging it once."""
        listed = self.status.not_synced
        if listed.get(name) == reason:
            return
        log.warning("%s: %r not synced here: %s", self.id, name, reason)
        if name in listed or len(listed) < self._not_synced_listed:
            listed[name] = reason

    def keep_not_synced(self, fi: FileInfo, reason: str) -> None:
        """An item a pull round refused for good: shown in the status (bounded; a refused
        deletion has nothing to show) and logged once as a warning, as a peer sent
        something this device never stores; its event goes out."""
        if fi.deleted:
            self.status.not_synced.pop(fi.name, None)
        else:
            self.note_not_synced(fi.name, reason)
        self._item_event(fi, reason)

    def item_finished(self, fi: FileInfo) -> None:
        self._failures_logged.pop(fi.name, None)
        self.events.emit(
            "ItemFinished",
            folder=self.id,
            item=fi.name,
            error=None,
            action="delete" if fi.deleted else "update",
        )

    def item_failed(self, fi: FileInfo, reason: str) -> None:
        """An item a pull round could not apply (it is tried again). Logged at INFO the
        first time it fails for ``reason``, at DEBUG while it keeps failing for the same
        one; the event goes out every time."""
        level = logging.DEBUG if self._failures_logged.get(fi.name) == reason else logging.INFO
        log.log(level, "%s: %s not synced: %s", self.id, fi.name, reason)
        if len(self._failures_logged) >= self._failures_remembered:
            self._failures_logged.clear()  # bounded: at worst logged once more
        self._failures_logged[fi.name] = reason
        self._item_event(fi, reason)

    def _item_event(self, fi: FileInfo, reason: str) -> None:
        self.events.emit("ItemFinished", folder=self.id, item=fi.name, error=reason)

    def conflicts_made(
        self, devices: tuple[DeviceID, ...], made: list[tuple[str, str, int]]
    ) -> None:
        """One ConflictCreated event per conflict copy: which file, the copy's name, and
        the device whose change won (its full ID when it is one of ``devices``, those
        sharing the folder)."""
        by_short = {d.short_id: str(d) for d in devices}
        for name, copy, winner in made:
            self.events.emit(
                "ConflictCreated",
                folder=self.id,
                item=name,
                copy=copy,
                device=by_short.get(winner, f"{winner:016x}"),
            )

    def scan_progressed(self, progress: ScanProgress) -> None:
        self.events.emit(
            "FolderScanProgress",
            folder=self.id,
            initial=not self.status.initial_scan_done,
            **progress.snapshot(time.monotonic()),
        )


def failure_reason(exc: BaseException, path: str) -> str:
    """The reason shown for a round of work that failed with ``exc`` (retried)."""
    if is_disk_full(exc):
        where = (
            "for the index in the daemon's home" if not isinstance(exc, OSError) else f"on {path}"
        )
        return f"{DISK_FULL} {where}; resumes when space is freed"
    return f"{describe(exc)}; retrying"


def settled_state(
    paused_by_user: bool, hold_reason: str, item_errors: Mapping[str, str], path: str
) -> tuple[str, str]:
    """The state (and its reason) shown once a round of work is done: the most important
    reason wins."""
    if paused_by_user:
        return "paused", "paused by the user"
    if hold_reason:
        return "paused", hold_reason
    if DISK_FULL in item_errors.values():
        return "paused", f"{DISK_FULL} on {path}; pulling resumes when space is freed"
    if item_errors:
        return "error", f"{len(item_errors)} items not in sync"
    return "idle", ""
