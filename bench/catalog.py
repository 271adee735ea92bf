"""What the bench can run: the sizes of each preset, the workloads' names and titles, and
the result of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    small_files: int  # (a)
    big_count: int  # (b), each big_size
    big_size: int
    huge_size: int  # (c), and the file (d) edits
    delta_size: int  # (d)
    rename_files: int  # (e)
    scan_files: int  # (f)
    latency_n: int  # (g)
    rescan_files: int  # (h)
    scale_files: int = 100_000  # (i)
    swarm_files: int = 1024  # (k, k2): 1 MiB files ...
    swarm_big: int = 1024 * MiB  # ... and one big file
    million_files: int = 1_000_000  # (j)


PRESETS = {
    "full": Sizes(10_000, 200, MiB, 1024 * MiB, MiB, 1000, 10_000, 20, 100_000),
    "quick": Sizes(
        1000, 20, MiB, 64 * MiB, MiB, 1000, 1000, 20, 2000, 10_000, 32, 64 * MiB, 20_000
    ),
    "tiny": Sizes(50, 3, MiB, 4 * MiB, MiB, 20, 50, 3, 100, 60, 3, 4 * MiB, 200),
}

TITLES = {
    "a": "small files (1–8 KiB)",
    "a2": "small files, (ii) just written, not flushed",
    "a3": "small files, (iii) source started with them",
    "b": "1 MiB files",
    "b2": "1 MiB files, (ii) just written, not flushed",
    "b3": "1 MiB files, (iii) source started with them",
    "b3cold": "1 MiB files, (iii) cold cache",
    "c": "one big file",
    "c2": "one big file, (ii) just written, not flushed",
    "c3": "one big file, (iii) source started with it",
    "c3cold": "one big file, (iii) cold cache",
    "d": "1 MiB overwritten in the big file",
    "e": "rename a directory",
    "f": "initial scan (one node)",
    "g": "latency, one small file",
    "h": "rescan, unchanged tree",
    "i": "scale: many small files, (iii) source started with them",
    "j": "many files on a running pair: initial scan",
    "k": "swarm: a fourth device fetches from three",
    "k2": "swarm: 1 MiB change in the big file to three peers",
}
ALL = tuple(TITLES)
# Run only when asked for (--workloads i,k,k2): at full size each takes minutes per run.
DEFAULT = tuple(wl for wl in ALL if wl not in ("i", "j", "k", "k2"))
# Workloads in the conditions of issue 22 reuse the data of (a), (b) or (c).
DATA_OF = {wl: wl[0] for wl in TITLES if len(wl) > 1}  # k2 shares k's data


def describe(wl: str, s: Sizes) -> str:
    if wl in DATA_OF:
        return describe(DATA_OF[wl], s)
    return {
        "a": f"{s.small_files:,} files of 1–8 KiB in nested dirs",
        "b": f"{s.big_count} × {s.big_size // MiB} MiB",
        "c": f"one {_size(s.huge_size)} random file",
        "d": f"{_size(s.delta_size)} overwritten mid-file in {_size(s.huge_size)}",
        "e": f"rename a dir of {s.rename_files:,} files",
        "f": f"initial scan of {s.scan_files:,} files (1–8 KiB)",
        "g": f"one 100-byte file A→B, median of {s.latency_n}",
        "h": f"rescan of {s.rescan_files:,} unchanged files",
        "i": f"{s.scale_files:,} files of 1–8 KiB in nested dirs",
        "j": f"{s.million_files:,} files of 16 B–1 KiB seeded on both, watchers on",
        "k": f"{s.swarm_files:,} × 1 MiB + one {_size(s.swarm_big)} file, from 3 holders to a 4th",
    }[wl]


def _size(n: int) -> str:
    return f"{n // (1 << 30)} GiB" if n >= 1 << 30 and n % (1 << 30) == 0 else f"{n // MiB} MiB"


@dataclass
class RunResult:
    workload: str
    system: str
    ok: bool
    seconds: float | None = None
    data_bytes: int = 0
    wire_bytes: int | None = None
    peak_rss: list[int] = field(default_factory=list)  # per daemon (or the one process)
    cpu_s: list[float] = field(default_factory=list)  # per daemon, timed window
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
