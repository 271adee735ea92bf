"""Counters and gauges rendered in the Prometheus text exposition format (v0.0.4)."""

from __future__ import annotations

from collections import Counter

PREFIX = "p2psync_discovery"
_HELP = {
    "announces_total": "Announcements accepted and stored.",
    "lookups_total": "Lookup requests answered (hits + misses).",
    "lookup_hits_total": "Lookups that found the device.",
    "lookup_misses_total": "Lookups of unknown devices (404).",
    "rejects_total": "Requests rejected with a 4xx, by reason.",
    "rate_limited_total": "Requests refused with 429 by the per-source rate limit.",
    "replicated_total": "Changes from sibling workers applied to this one's store (--workers).",
}


class Metrics:
    """The server's counters; ``render(devices=...)`` adds the store-size gauge. A worker
    of ``--workers N`` renders its index too (``p2psync_discovery_worker``)."""

    def __init__(self, worker: int | None = None) -> None:
        self.worker = worker
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()

    def inc(self, name: str) -> None:
        if name not in _HELP or name == "rejects_total":
            raise KeyError(f"unknown counter {name!r}")
        self.counts[name] += 1

    def reject(self, reason: str) -> None:
        self.rejects[reason] += 1

    def render(self, *, devices: int, connections: dict[str, int] | None = None) -> str:
        lines: list[str] = []
        for name, help_text in _HELP.items():
            full = f"{PREFIX}_{name}"
            lines += [f"# HELP {full} {help_text}", f"# TYPE {full} counter"]
            if name == "rejects_total":
                for reason in sorted(self.rejects):
                    lines.append(f'{full}{{reason="{_escape(reason)}"}} {self.rejects[reason]}')
            else:
                lines.append(f"{full} {self.counts[name]}")
        gauge = f"{PREFIX}_devices"
        lines += [
            f"# HELP {gauge} Devices with at least one live address in the store.",
            f"# TYPE {gauge} gauge",
            f"{gauge} {devices}",
        ]
        if self.worker is not None:
            name = f"{PREFIX}_worker"
            lines += [
                f"# HELP {name} Which worker process answered (--workers N: 0 to N-1).",
                f"# TYPE {name} gauge",
                f"{name} {self.worker}",
            ]
        if connections is not None:
            open_, refused = f"{PREFIX}_connections", f"{PREFIX}_connections_refused_total"
            lines += [
                f"# HELP {open_} Open client connections.",
                f"# TYPE {open_} gauge",
                f"{open_} {connections['open']}",
                f"# HELP {refused} Connections closed at once: their address held its cap.",
                f"# TYPE {refused} counter",
                f"{refused} {connections['refused_per_address']}",
            ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
