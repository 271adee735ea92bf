"""The process's limit on open files (RLIMIT_NOFILE).

Many systems start processes with a soft limit of 1,024 handles and a much higher hard
limit; a sync daemon holds a handle per connection, per watched folder and per file
being synced, so it raises its soft limit towards the hard one at start (as Syncthing
does). Where ``resource`` is missing (Windows) nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

# Never ask for more than this, even under an unlimited hard limit (macOS refuses
# RLIM_INFINITY for open files; its per-process ceiling is 10,240 by default).
_CEILING = 1 << 20
_FALLBACK = 10240


@dataclass(frozen=True, slots=True)
class OpenFileLimit:
    """Soft limits before and after raising, and the hard limit; -1 means unlimited."""

    before: int
    after: int
    hard: int


def open_file_soft_limit() -> int:
    """The current soft limit, or 0 when unknown or unlimited."""
    if resource is None:
        return 0
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 0 if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> OpenFileLimit:
    """Raise the soft RLIMIT_NOFILE as far towards the hard limit as allowed."""
    if resource is None:
        return OpenFileLimit(0, 0, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    if soft == resource.RLIM_INFINITY:
        return OpenFileLimit(-1, -1, -1)
    targets = [_CEILING, _FALLBACK] if unlimited else [min(hard, _CEILING)]
    for target in targets:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        break
    after, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OpenFileLimit(soft, after, -1 if unlimited else hard)
