"""Progress views: byte completion of a folder (here and on each peer, like Syncthing's
``/rest/db/completion``), the files being pulled and from whom, the pull rate and ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..identity import DeviceID

if TYPE_CHECKING:
    from ..index import Counts, IndexStore
    from .registry import RunningFolder

MAX_PULLING = 10  # files listed as being pulled, largest first


def completion_percent(global_bytes: int, need_bytes: int, need_items: int) -> float:
    """How much of the global state is in place, by bytes; like Syncthing, a device that
    only lacks deletions or directories reads 95 %, never 100 %."""
    if global_bytes <= 0:
        percent = 100.0
    else:
        percent = 100.0 * max(0, global_bytes - need_bytes) / global_bytes
    if need_items and percent >= 100.0:
        return 95.0
    return round(min(percent, 100.0), 2)


def need_items(c: Counts) -> int:
    return c.files + c.directories + c.symlinks + c.deleted


class CompletionCache:
    """A peer's need is one pass over the folder's globals: reuse it while no device's
    index of the folder moved (the key is every device's highest sequence).

    While indexes keep moving (a big folder syncing) a result is also reused for
    ``reuse_factor`` times as long as its pass took, at least ``reuse_min_s``: a view
    polled every second then costs about a tenth of a core, where a pass per poll over a
    million entries took longer than the clients' timeout. The completion shown may be
    that much behind while the folder syncs; once it is quiet the key holds it exact."""

    def __init__(
        self,
        max_entries: int = 1000,
        *,
        reuse_factor: float = 10.0,
        reuse_min_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.reuse_factor = reuse_factor
        self.reuse_min_s = reuse_min_s
        self._clock = clock
        # (folder, device) -> (key, counts, when computed, seconds the pass took)
        self._cache: dict[tuple[str, bytes], tuple[tuple[int, ...], Counts, float, float]] = {}

    def need_of(self, index: IndexStore, folder: str, device: bytes) -> Counts:
        """Blocking: ``index.need_counts_of(folder, device)``, cached."""
        hit = self._cache.get((folder, device))
        if hit is not None:  # the clock first: the key costs a query per device
            _, counts, at, cost = hit
            if self._clock() - at < max(self.reuse_min_s, self.reuse_factor * cost):
                return counts
        key = tuple(index.max_sequence(folder, d) for d in index.devices(folder))
        if hit is not None and hit[0] == key:
            return hit[1]  # nothing changed since: still right, however old
        start = self._clock()
        counts = index.need_counts_of(folder, device)
        end = self._clock()
        if len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)), None)
        self._cache[(folder, device)] = (key, counts, end, end - start)
        return counts


def completion_json(global_counts: Counts, need: Counts) -> dict[str, Any]:
    items = need_items(need)
    return {
        "completion": completion_percent(global_counts.bytes, need.bytes, items),
        "global_bytes": global_counts.bytes,
        "need_bytes": need.bytes,
        "need_items": items,
        "need_deletes": need.deleted,
    }


def pulling_json(
    runner: RunningFolder | None, name_of: Callable[[DeviceID], str]
) -> list[dict[str, Any]]:
    """The files ``runner`` is building now: bytes in place, from this device and from
    which peers."""
    puller = getattr(runner, "puller", None)
    progress = getattr(puller, "progress", None)
    if progress is None:
        return []
    out = []
    for fp in progress.files()[:MAX_PULLING]:
        sources = []
        for raw, size in sorted(fp.sources.items(), key=lambda kv: -kv[1]):
            did = DeviceID(raw)
            sources.append({"id": str(did), "name": name_of(did), "bytes": size})
        out.append(
            {
                "name": fp.name,
                "size": fp.total,
                "done": fp.done,
                "local_bytes": fp.local,
                "percent": 100.0 if fp.total <= 0 else round(100.0 * fp.done / fp.total, 1),
                "from": sources,
            }
        )
    return out


def eta_seconds(remaining: int, rate: float) -> float | None:
    """Seconds until ``remaining`` bytes are in place at ``rate`` bytes/s (None: unknown)."""
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return None
    return round(remaining / rate, 1)
