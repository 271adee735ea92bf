"""The folder loop's tuning values, in one frozen value passed to the runner and its
scheduler (tests pass smaller ones instead of patching module constants)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FolderTuning:
    pull_page: int = 256  # needed entries read from the index at a time
    retry_min: float = 1.0  # seconds before the first retry of a failed round
    retry_max: float = 60.0  # the backoff doubles up to this
    version_clean_interval: float = 3600.0  # expire old versions this often
    wake_coalesce: float = 0.01  # let a burst of triggers become one round
    rename_sources_max: int = 200_000  # needed deletions looked at as rename sources
    temp_max_age_ns: int = 24 * 3600 * 10**9  # like Syncthing: a day-old partial is garbage
    pull_debounce: float = 0.03  # seconds without index updates before pulling
    pull_debounce_max: float = 2.0  # ... but no longer than this after a burst began
    space_check_interval: float = 2.0  # paused for a full disk: how often free space is read
    space_returned: int = 1024 * 1024  # this much more free than at the failure: go again
    not_synced_listed: int = 1000  # refused items shown in the status (all kept in the index)
    scan_progress_interval: float = 1.0  # seconds between progress reports of a scan


DEFAULT_TUNING = FolderTuning()
