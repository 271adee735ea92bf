"""What a folder shows: its state, why, and what is not in sync (read by the API)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..scanner.scan import ScanProgress


@dataclass
class FolderStatus:
    state: str = "starting"  # starting, idle, scanning, syncing, error, paused
    reason: str = ""
    item_errors: dict[str, str] = field(default_factory=dict)
    # peers' items refused for good (since this start), with why: not errors, not retried
    not_synced: dict[str, str] = field(default_factory=dict)
    last_scan: float = 0.0
    scan_problems: list[tuple[str, str]] = field(default_factory=list)
    conflicts: int = 0
    # the first full scan since start: until it completes, peers may not know every file
    initial_scan_done: bool = False
    scan_progress: ScanProgress | None = None  # of the scan running now (None: not scanning)
    # local items outside the selection kept here (a local change, not on another
    # device yet), with why (bounded), and how many in all
    selection_kept: dict[str, str] = field(default_factory=dict)
    selection_kept_count: int = 0
