"""Workloads k and k2 (issue 22.3): a swarm of four devices of one system.

A, B and C hold the data (1 MiB files and one big file; A had it, B and C pulled it
from A before the timed window); D is then started with the folder configured and
fetches everything — blocks may come from all three at once. k times D from its start
until its tree is identical; the bytes each holder sent D are reported. k2 times one
1 MiB change in the big file on A until B, C and D all hold it.

Every directed link goes through its own CountingProxy, so the bytes between any two
devices are known.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import st
from .daemon import Daemon
from .errors import WorkloadFailed
from .p2p import FOLDER_ID, _cli, _Node, _parallel
from .procstats import cpu_seconds, peak_rss
from .proxy import CountingProxy
from .trees import link_tree, overwrite_middle, wait_identical

NAMES = ("A", "B", "C", "D")
HOLDERS = ("A", "B", "C")


class Swarm:
    def __init__(self, base: Path, system: str, folder_options: dict[str, object]) -> None:
        self.system = system
        self.folder_options = folder_options
        if system == "p2psync":
            self.nodes: dict[str, Any] = {n: _Node(base, n) for n in NAMES}
        elif system == "syncthing":
            self.nodes = {n: st._STNode(base, n) for n in NAMES}
        else:
            raise WorkloadFailed(f"swarm workloads run on p2psync or syncthing, not {system}")
        self.proxies: dict[tuple[str, str], CountingProxy] = {}

    def dir(self, name: str) -> Path:
        return Path(self.nodes[name].data)

    def __enter__(self) -> Swarm:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        nodes = self.nodes
        if self.system == "p2psync":
            _parallel(*(n.init for n in nodes.values()))
        else:
            for n in nodes.values():
                n.generate()
        for a in NAMES:
            for b in NAMES:
                if a != b:
                    self.proxies[(a, b)] = CountingProxy(nodes[b].port).start()
        if self.system == "p2psync":
            for a in NAMES:
                others = [b for b in NAMES if b != a]
                for b in others:
                    _cli(nodes[a].home, "peer", "add", nodes[b].device_id, "--name", b,
                         "--address", f"tcp://127.0.0.1:{self.proxies[(a, b)].port}")  # fmt: skip
                shares = [x for b in others for x in ("--share", nodes[b].device_id)]
                _cli(nodes[a].home, "folder", "add", str(nodes[a].data), "--id", FOLDER_ID,
                     *shares)  # fmt: skip
                if self.folder_options:
                    nodes[a].set_folder_options(self.folder_options)
        else:
            ids = [nodes[n].device_id for n in NAMES]
            for a in NAMES:
                nodes[a].start()
                for b in NAMES:
                    if a != b:
                        nodes[a].add_device(nodes[b], self.proxies[(a, b)].port)
                nodes[a].add_folder(nodes[a].data, ids)
            # D starts later, as a first start with the folder configured
            nodes["D"].daemon.stop()
            nodes["D"].daemon = None
            for db in nodes["D"].home.glob("index-*.db"):
                shutil.rmtree(db, ignore_errors=True)

    def start(self, names: tuple[str, ...]) -> None:
        if self.system == "p2psync":
            _parallel(*(self.nodes[n].start for n in names))
        else:
            for n in names:
                if self.nodes[n].daemon is None:
                    self.nodes[n].start()

    def launch(self, name: str) -> None:
        """Start ``name`` without waiting for it (timed from here)."""
        self.nodes[name].launch()

    def close(self) -> None:
        for n in self.nodes.values():
            if n.daemon is not None:
                n.daemon.stop()
        for p in self.proxies.values():
            p.close()

    @property
    def daemons(self) -> list[Daemon]:
        return [n.daemon for n in self.nodes.values() if n.daemon is not None]

    def check_alive(self) -> None:
        for d in self.daemons:
            d.check_alive()

    def bytes_between(self, a: str, b: str) -> int:
        return self.proxies[(a, b)].total + self.proxies[(b, a)].total

    def confirm(self, names: tuple[str, ...], timeout: float = 60.0) -> None:
        if self.system == "syncthing":
            for n in names:
                self.nodes[n].wait_in_sync(timeout)


def _settle(swarm: Swarm, timeout: float) -> None:
    """Untimed set-up: A holds the data; B and C pull it from A."""
    for n in ("B", "C"):
        wait_identical(
            swarm.dir("A"), swarm.dir(n), timeout=timeout, what=f"swarm set-up {n}",
            alive=swarm.check_alive,
        )  # fmt: skip
    swarm.confirm(("B", "C"))


def run_swarm(
    system: str,
    base: Path,
    master: Path,
    *,
    fetch: bool,
    timeout: float,
    folder_options: dict[str, object],
    delta_size: int,
    data_bytes: int,
) -> dict[str, Any]:
    """One k (``fetch``) or k2 run; returns the RunResult fields."""
    with Swarm(base, system, folder_options) as swarm:
        link_tree(master, swarm.dir("A") / "swarm")
        if not fetch:  # k2 edits the big file in place: A's must be a copy, not the master
            big = swarm.dir("A") / "swarm" / "big.bin"
            big.unlink()
            shutil.copyfile(master / "big.bin", big)
        swarm.start(HOLDERS if fetch else NAMES)
        _settle(swarm, timeout)
        if not fetch:
            wait_identical(swarm.dir("A"), swarm.dir("D"), timeout=timeout, what="D set-up",
                           alive=swarm.check_alive)  # fmt: skip
            swarm.confirm(("D",))
        os.sync()
        wire0 = {n: swarm.bytes_between("D", n) for n in HOLDERS}
        cpu0 = {n: cpu_seconds(swarm.nodes[n].daemon.pid) for n in NAMES if swarm.nodes[n].daemon}
        t0 = time.monotonic()
        if fetch:
            swarm.launch("D")
            receivers: tuple[str, ...] = ("D",)
        else:
            # the 1 MiB write is the change (new random bytes each run); all four are running
            overwrite_middle(swarm.dir("A") / "swarm" / "big.bin", delta_size,
                             seed=int.from_bytes(os.urandom(4)))  # fmt: skip
            receivers = ("B", "C", "D")
        ends = [
            wait_identical(
                swarm.dir("A"),
                swarm.dir(n),
                timeout=timeout,
                what=f"k on {n}",
                alive=swarm.check_alive,
            )  # fmt: skip
            for n in receivers
        ]
        seconds = max(ends) - t0
        swarm.confirm(receivers)
        pids = {n: swarm.nodes[n].daemon.pid for n in NAMES}
        from_holders = {n: swarm.bytes_between("D", n) - wire0[n] for n in HOLDERS}
        return {
            "seconds": seconds,
            "data_bytes": data_bytes if fetch else delta_size,
            "wire_bytes": sum(from_holders.values()) if fetch else None,
            "peak_rss": [peak_rss(pids[n]) for n in NAMES],
            "cpu_s": [cpu_seconds(pids[n]) - cpu0.get(n, 0.0) for n in NAMES],
            "extra": {
                "bytes_between_D_and": from_holders,
                "per_receiver_s": {
                    n: round(e - t0, 3) for n, e in zip(receivers, ends, strict=True)
                },
            },
        }


def make_swarm_data(root: Path, files: int, file_size: int, big_size: int,
                    make: Callable[..., object]) -> int:  # fmt: skip
    """``files`` random files of ``file_size`` and one ``big.bin`` of ``big_size``."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        make(root / "files" / f"f{i:05d}.bin", file_size, 100 + i)
    make(root / "big.bin", big_size, 99)
    return files * file_size + big_size
