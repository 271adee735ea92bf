"""Randomized convergence: 3 devices, a few hundred random operations interleaved with
partitions and reconnects. After healing, all trees are identical and every content that
was the last write to a path on a device while partitioned survives, as the file or as a
conflict copy. Seeded: a failure prints its seed. ``P2PSYNC_SOAK_SEEDS=N`` runs N seeds.

Each round isolates one device X (stopped), and lets X and one connected device Y make
random changes; the third device only receives. X's and Y's changes are therefore all
concurrent with each other, so none of them may be lost when X comes back.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
import trio
from nodes import FOLDER, Cluster, tree_digest

NAMES = ["a", "b", "c"]
ROUNDS = 4
OPS_PER_WRITER = 25
DIRS = ["", "d0", "d1", "d0/e"]
FILES = [f"f{i}.txt" for i in range(6)]
SOAK = int(os.environ.get("P2PSYNC_SOAK_SEEDS", "0") or 0)
SEEDS = list(range(1000, 1000 + SOAK)) if SOAK else [11, 29]


class Writer:
    """Random operations on one device's folder; remembers what it wrote this round."""

    def __init__(self, root: Path, rng: random.Random, tag: str) -> None:
        self.root = root
        self.rng = rng
        self.tag = tag
        self.written: dict[str, str] = {}  # content hash -> "path (tag-count)" written this round
        self.count = 0

    def files(self) -> list[str]:
        return sorted(
            n for n, d in tree_digest(self.root).items() if d != "dir" and not d.startswith("link:")
        )

    def dirs(self) -> list[str]:
        return [""] + sorted(n for n, d in tree_digest(self.root).items() if d == "dir")

    def _content(self) -> bytes:
        self.count += 1
        head = f"{self.tag}-{self.count}\n".encode()
        # A size this writer never used before: a rewrite within the file system's mtime
        # granularity that kept size and mtime would be invisible to any metadata scanner.
        return head + self.rng.randbytes(self.rng.choice([0, 10, 1000, 50_000]) + self.count * 7)

    def _write(self, rel: str) -> str:
        data = self._content()
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        head = data.split(b"\n", 1)[0].decode()
        self.written[hashlib.sha256(data).hexdigest()] = f"{rel} ({head})"
        return f"write {rel}"

    def step(self) -> str:
        rng = self.rng
        files, dirs = self.files(), self.dirs()
        op = rng.choice(["create", "create", "modify", "modify", "delete", "rename", "mkdir"])
        if op in ("modify", "delete", "rename") and not files:
            op = "create"
        if op == "create":
            parent = rng.choice(DIRS)
            return self._write(f"{parent}/{rng.choice(FILES)}".lstrip("/"))
        if op == "modify":
            # Not conflict copies: like Syncthing, a conflict on a conflict copy keeps no
            # further copy (the loser goes to the versioner), so that is not checked here.
            originals = [f for f in files if ".sync-conflict-" not in f]
            return self._write(rng.choice(originals or ["new.txt"]))
        if op == "delete":
            victim = rng.choice(files)
            (self.root / victim).unlink()
            return f"delete {victim}"
        if op == "rename":
            src = rng.choice(files)
            dst = f"{rng.choice(dirs)}/r{rng.randrange(20)}.txt".lstrip("/")
            if (self.root / dst).exists():
                return "rename skipped"
            (self.root / dst).parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.root / src, self.root / dst)
            return f"rename {src} -> {dst}"
        new = f"{rng.choice(DIRS)}/m{rng.randrange(4)}".lstrip("/")
        (self.root / new).mkdir(parents=True, exist_ok=True)
        return f"mkdir {new}"


def contents(root: Path) -> set[str]:
    return {d for d in tree_digest(root).values() if d != "dir" and not d.startswith("link:")}


def settled(c: Cluster) -> bool:
    """Trees identical, every index fully exchanged, nothing needed, every folder idle."""
    nodes = c.nodes
    for n, node in nodes.items():
        runner = c.runner(n)
        if runner.status.state != "idle" or node.index.need_counts(FOLDER).files:
            return False
        for m, other in nodes.items():
            if m != n and node.index.max_sequence(
                FOLDER, other.device_id.raw
            ) != other.index.max_sequence(FOLDER, other.device_id.raw):
                return False
    return c.in_sync()


async def heal(c: Cluster, deadline: float, seed: int, log: list[str]) -> None:
    """Rescan everyone until the cluster settles (rescans are triggers, not timing)."""
    with trio.move_on_after(deadline) as scope:
        while True:
            for n in c.nodes:
                c.scan(n)
            with trio.move_on_after(3):
                while True:
                    await trio.sleep(0.05)
                    try:
                        if settled(c):
                            return
                    except FileNotFoundError:
                        continue
    if scope.cancelled_caught:
        errors = {n: c.runner(n).status.item_errors for n in c.nodes}
        raise AssertionError(
            f"seed {seed}: no convergence within {deadline}s; item errors {errors}; "
            f"last ops {log[-10:]}"
        )


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_operations_converge_without_losing_writes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    c = Cluster(tmp_path, NAMES)
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        for rnd in range(ROUNDS):
            isolated = rng.choice(NAMES)
            other = rng.choice([n for n in NAMES if n != isolated])
            await c.stop(isolated)
            writers = [Writer(c.data(n), rng, f"{seed}-{rnd}-{n}") for n in (isolated, other)]
            for _ in range(OPS_PER_WRITER):
                for w, name in zip(writers, (isolated, other), strict=True):
                    log.append(f"r{rnd} {name}#{w.count}: {w.step()}")
                if rng.random() < 0.2:
                    c.scan(other)  # let the connected devices sync part-way
            must_survive = {
                h: w.written[h] for w in writers for h in contents(w.root) & w.written.keys()
            }
            await c.start(nursery, isolated)
            await heal(c, 45, seed, log)
            final = contents(c.data("a"))
            lost = sorted(must_survive[h] for h in must_survive.keys() - final)
            assert not lost, (
                f"seed {seed} round {rnd}: last writes lost: {lost} "
                f"(isolated {isolated}, writer {other}); ops this round: "
                f"{[op for op in log if op.startswith(f'r{rnd} ')]}"
            )
        nursery.cancel_scope.cancel()
