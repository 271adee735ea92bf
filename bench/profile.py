"""Optional sampling profiles of the p2psync daemons during a timed window (py-spy).

``py-spy record --format raw`` writes collapsed stacks; :func:`summarize` turns them into
the few lines that say where the CPU went (by leaf function and by p2psync module).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def find_py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    """Records each p2psync daemon once per workload into ``out_dir``."""

    def __init__(self, out_dir: Path, rate: int = 100) -> None:
        exe = find_py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.exe = exe
        self.out_dir = out_dir
        self.rate = rate
        self.done: set[str] = set()
        out_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def record(self, wl: str, pids: list[int]) -> Iterator[None]:
        if wl in self.done:
            yield
            return
        self.done.add(wl)
        procs = []
        for node, pid in zip("AB", pids, strict=False):
            raw = self.out_dir / f"{wl}-{node}.raw"
            procs.append(
                (
                    raw,
                    subprocess.Popen(
                        [
                            self.exe,
                            "record",
                            "--pid",
                            str(pid),
                            "--format",
                            "raw",
                            "--output",
                            str(raw),
                            "--rate",
                            str(self.rate),
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                )
            )
        try:
            yield
        finally:
            for raw, proc in procs:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                if raw.exists():
                    raw.with_suffix(".txt").write_text(summarize(raw))


# Leaf frames that mean "this thread is waiting", not working (py-spy's idle detection
# misses some of them when sampling with --nonblocking).
_IDLE_LEAVES = (
    "get_events (_io_epoll.py)",
    "wait (threading.py)",
    "Condition.wait (threading.py)",
    "WorkerThread._work (_thread_cache.py)",
    "InotifyFD._check_inotify_fd (inotify_c.py)",
    "select (selectors.py)",
    "EpollIOManager.get_events (_io_epoll.py)",
)


def summarize(raw: Path, top: int = 15) -> str:
    """Where the busy samples went: leaf functions (self) and p2psync functions
    (inclusive). Samples whose leaf is an idle wait are counted apart."""
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        if frames[-1] in _IDLE_LEAVES:
            idle += n
            continue
        busy += n
        leaf[frames[-1]] += n
        for name in {f for f, full in zip(frames, stack.split(";"), strict=True) if _is_p2p(full)}:
            inclusive[name] += n
    lines = [f"{raw.name}: {busy} busy samples ({idle} idle samples left out)"]
    if not busy:
        return lines[0] + "\n"
    lines.append("self time by function:")
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in leaf.most_common(top)]
    lines.append("inclusive time by p2psync function:")
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)".
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit("/", 1)[-1].split(":")[0]
    return f"{name} ({file})"


def _is_p2p(frame: str) -> bool:
    path = frame.partition(" (")[2]
    if "p2psync/cli/" in path:  # the main thread's entry frames: in every sample
        return False
    return path.startswith("p2psync/") or "/p2psync/" in path
