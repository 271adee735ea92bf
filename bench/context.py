"""One bench run's context: its work directory, the generated data each workload reuses,
and the run directories, deleted or set aside."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import DATA_OF, MiB, Sizes
from .profile import Profiler
from .swarm import make_swarm_data
from .trees import make_big_files, make_random_file, make_small_files

# A run directory with more files than this is deleted only when the whole bench ends.
# ext4 skips inodes freed in the last ~30 s when it allocates new ones, one lookup per
# skipped inode: right after deleting 10,000 files, each file the next run creates cost
# 100-300 us of kernel time here (10,000 creations: 1-3 s instead of 0.2 s), whichever
# system ran next. The bench's own clean-up must not slow the run after it.
DEFER_DELETE_FILES = 1000
# ... but only while the disk keeps this much free: k's runs hold 8 GiB each, and moving
# them all aside filled a 100 GB disk in the middle of a run (bash, the bench, the log)
DEFER_DELETE_MIN_FREE = 20 * 1024**3


def holds_many_files(root: Path, limit: int) -> bool:
    """Whether the tree under ``root`` has more than ``limit`` entries (stops counting
    there)."""
    seen = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        seen += len(dirnames) + len(filenames)
        if seen > limit:
            return True
    return False


@dataclass
class Context:
    workdir: Path
    sizes: Sizes
    timeout_scale: float = 1.0
    profiler: Profiler | None = None
    keep_runs: bool = False  # keep each run's homes and logs under workdir/kept/
    p2p_folder_options: dict[str, object] = field(default_factory=dict)
    p2p_scan: str = "inprocess"  # f, h: "inprocess" (bench/inproc.py) or "daemon" (API)
    defer_delete_min_free: int = DEFER_DELETE_MIN_FREE
    _masters: dict[str, Path] = field(default_factory=dict)
    _kept: int = 0

    def new_run_dir(self) -> Path:
        base = self.workdir / "run"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        return base

    def finish_run_dir(self, base: Path, label: str) -> None:
        """Delete the run's directory, or move it aside: with --keep, or when it holds many
        files and the disk has room to wait (``DEFER_DELETE_FILES``, ``..._MIN_FREE``)."""
        if base.exists() and (self.keep_runs or self._defer_delete(base)):
            self._kept += 1
            aside = "kept" if self.keep_runs else "deleted-at-end"
            dest = self.workdir / aside / f"{self._kept:02d}-{label}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(base, dest)
        shutil.rmtree(base, ignore_errors=True)

    def _defer_delete(self, base: Path) -> bool:
        if shutil.disk_usage(base).free < self.defer_delete_min_free:
            return False
        return holds_many_files(base, DEFER_DELETE_FILES)

    def timeout(self, data_bytes: int = 0, files: int = 0) -> float:
        return (120 + data_bytes / (4 * MiB) + files * 0.02) * self.timeout_scale

    def master(self, wl: str) -> Path:
        """The generated data of workload ``wl`` (made once, reused by every run)."""
        wl = DATA_OF.get(wl, wl)
        if wl not in self._masters:
            path = self.workdir / "masters" / wl
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            s = self.sizes
            if wl == "a":
                make_small_files(path / "a", s.small_files, seed=1)
            elif wl == "b":
                make_big_files(path / "b", s.big_count, s.big_size, seed=2)
            elif wl in ("c", "d"):
                make_random_file(path / "big.bin", s.huge_size, seed=3)
            elif wl == "e":
                make_small_files(path / "tree" / "dir1", s.rename_files, seed=5)
            elif wl == "f":
                make_small_files(path, s.scan_files, seed=6)
            elif wl == "h":
                make_small_files(path, s.rescan_files, seed=8, min_size=64, max_size=1024)
            elif wl == "i":
                make_small_files(path / "i", s.scale_files, seed=9)
            elif wl == "j":
                make_small_files(path / "tree", s.million_files, seed=10, min_size=16,
                                 max_size=1024)  # fmt: skip
            elif wl == "k":
                make_swarm_data(path, s.swarm_files, MiB, s.swarm_big, make_random_file)
            self._masters[wl] = path
        return self._masters[wl]

    def drop_master(self, wl: str) -> None:
        path = self._masters.pop(DATA_OF.get(wl, wl), None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
