"""Pure debounce and aggregation of filesystem change notifications (no I/O, no trio).

The watcher feeds folder-relative names in as events arrive and asks, with the current
time passed in, when the next batch is due. A batch goes out after ``delay`` seconds
without new events, or ``max_delay`` seconds after its first event under continuous
writes (Syncthing's watch aggregator does the same with longer defaults). A batch is a
sorted list of names to rescan, or ``None`` meaning "rescan the whole folder".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from p2psync.fs.internal import MARKER, VERSIONS_DIR, fold, is_temp_base

# One bridge item: the names one event touched, or None = rescan everything.
BridgeItem = tuple[str, ...] | None

DEFAULT_DELAY = 0.1
DEFAULT_MAX_DELAY = 1.0
DEFAULT_MAX_PER_DIR = 100
DEFAULT_MAX_PENDING = 10_000

Batch = list[str] | None  # names to rescan, or None = full rescan


def relative_name(root: str, path: str, sep: str = "/") -> str | None:
    """``path`` as a '/'-separated name relative to ``root``; "" for the root itself.

    Both are absolute paths in the platform's form, ``sep`` its separator. Returns None
    for paths outside the root (e.g. the far end of a move out of the folder).
    """
    root = root.rstrip(sep) or sep
    if path.rstrip(sep) == root.rstrip(sep):
        return ""
    prefix = root if root.endswith(sep) else root + sep
    if not path.startswith(prefix):
        return None
    rel = path[len(prefix) :].strip(sep)
    return rel.replace(sep, "/") if sep != "/" else rel


def is_watch_internal(name: str) -> bool:
    """True if a change to ``name`` is p2psync's own and must not trigger a rescan.

    Unlike ``fs.internal.is_internal``, ``.p2pignore`` is NOT internal here: editing it
    changes what is ignored, so it must trigger a rescan.
    """
    parts = name.split("/")
    if fold(parts[0]) in (MARKER, VERSIONS_DIR):
        return True
    return any(is_temp_base(part) for part in parts)


def _parent(name: str) -> str:
    return name.rpartition("/")[0]


def _drop_covered(names: set[str]) -> set[str]:
    """Remove names that lie under another name in the set (rescanning a dir covers them)."""
    kept = set()
    for name in names:
        parent = _parent(name)
        while parent and parent not in names:
            parent = _parent(parent)
        if not parent:
            kept.add(name)
    return kept


def collapse(names: Iterable[str], max_per_dir: int) -> Batch:
    """Bound a batch: a directory with more than ``max_per_dir`` changed entries is replaced
    by the directory itself, repeatedly up the tree; a crowded root means a full rescan."""
    current = _drop_covered(set(names))
    while True:
        children: defaultdict[str, list[str]] = defaultdict(list)
        for name in current:
            children[_parent(name)].append(name)
        crowded = [d for d, kids in children.items() if len(kids) > max_per_dir]
        if not crowded:
            return sorted(current)
        if "" in crowded:
            return None
        for directory in crowded:
            current.difference_update(children[directory])
            current.add(directory)
        current = _drop_covered(current)


@dataclass
class Aggregator:
    """Collects changed names and decides when a batch is due. Times are plain floats."""

    delay: float = DEFAULT_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    max_per_dir: int = DEFAULT_MAX_PER_DIR
    max_pending: int = DEFAULT_MAX_PENDING
    _names: set[str] = field(default_factory=set, init=False, repr=False)
    _full_rescan: bool = field(default=False, init=False)
    _first: float | None = field(default=None, init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.delay <= self.max_delay:
            raise ValueError(f"need 0 <= delay <= max_delay, got {self.delay}, {self.max_delay}")
        if self.max_per_dir < 1 or self.max_pending < 2:
            raise ValueError("max_per_dir must be >= 1 and max_pending >= 2")

    @property
    def pending(self) -> bool:
        return self._first is not None

    def _touch(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now

    def add(self, names: Iterable[str], now: float) -> None:
        """Record changed names at time ``now`` ("" = the root: full rescan)."""
        self._touch(now)
        if self._full_rescan:
            return  # a full rescan covers everything; keep memory bounded
        for name in names:
            if name == "":
                self.add_full_rescan(now)
                return
            self._names.add(name)
        if len(self._names) > self.max_pending:
            collapsed = collapse(self._names, self.max_per_dir)
            # Collapsing must make real room, or we would collapse again on every event.
            if collapsed is None or len(collapsed) > self.max_pending // 2:
                self.add_full_rescan(now)
            else:
                self._names = set(collapsed)

    def add_full_rescan(self, now: float) -> None:
        """Events were lost (overflow, watcher error): the next batch is a full rescan."""
        self._touch(now)
        self._full_rescan = True
        self._names.clear()

    def deadline(self) -> float | None:
        """When the pending batch is due: quiet for ``delay``, or ``max_delay`` after its
        first event. None if nothing is pending."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.delay, self._first + self.max_delay)

    def is_due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self) -> Batch:
        """The pending batch (sorted, collapsed; None = full rescan); starts a new one."""
        batch = None if self._full_rescan else collapse(self._names, self.max_per_dir)
        self._names = set()
        self._full_rescan = False
        self._first = self._last = None
        return batch
