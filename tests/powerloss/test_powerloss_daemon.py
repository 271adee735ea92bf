"""The daemon (home and folder on crashfs) has its power cut at sync requests of a
pull of many small files, a pull of a large file, a local scan, a directory rename, a
conflict and a versioning move; after each cut what survived is checked, the daemon
restarts on it and the folder must converge (runs.py has the invariants).

``make test`` tries two seeded cut points per scenario (P2PSYNC_POWERLOSS_CUTS=N for N); ``make powerloss``
(P2PSYNC_POWERLOSS_CUTS=all) tries every sync request the run makes.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from harness import needs_fuse
from runs import Bench, Scenario, sha

pytestmark = [needs_fuse, pytest.mark.timeout(1800)]

RNG = random.Random(25)


def _bytes(n: int, tag: str) -> bytes:
    return (tag.encode() + RNG.randbytes(n))[:n]


SMALL = {f"d{i % 4}/s{i:03d}.txt": _bytes(500 + i * 7, f"small {i}") for i in range(120)}
BIG_OLD = _bytes(6 * 1024 * 1024, "big v1")
BIG_NEW = BIG_OLD[: 3 * 1024 * 1024] + _bytes(3 * 1024 * 1024, "big v2")
LOCAL = {f"local/l{i:02d}.txt": _bytes(800 + i, f"local {i}") for i in range(30)}
PHOTOS = {f"photos/p{i:02d}.jpg": _bytes(3000 + i, f"photo {i}") for i in range(20)}
NOTES = {f"notes/n{i}.txt": _bytes(1000 + i, f"note {i}") for i in range(10)}
NOTES_NEW = {n: _bytes(1200, f"edited {n}") for n in list(NOTES)[:5]}
DOC_OLD, DOC_A, DOC_B = b"doc v1\n" * 100, b"doc edited on a\n" * 90, b"doc edited on b\n" * 80


def _set_mtime(path: Path, offset: int) -> None:
    t = time.time() + offset
    os.utime(path, (t, t))


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _tree(files: dict[str, bytes]) -> dict[str, str]:
    return {n: sha(d) for n, d in files.items()}


def _rename_photos(a: Path, b: Path) -> None:
    os.rename(a / "photos", a / "albums")


def _versioning_change(a: Path, b: Path) -> None:
    for name, data in NOTES_NEW.items():
        (a / name).write_bytes(data)
        _set_mtime(a / name, 5)
    for name in list(NOTES)[5:]:
        (a / name).unlink()


def _conflict(a: Path, b: Path) -> None:
    (a / "doc.txt").write_bytes(DOC_A)
    _set_mtime(a / "doc.txt", 5)
    (b / "doc.txt").write_bytes(DOC_B)
    _set_mtime(b / "doc.txt", 7)


def _big(a: Path, b: Path) -> None:
    (a / "big.bin").write_bytes(BIG_NEW)
    _set_mtime(a / "big.bin", 5)


SCENARIOS = {
    "small-files-pull": Scenario(
        "small-files-pull",
        a_files={"seed.txt": b"seed"},
        change=lambda a, b: _write(a, SMALL),
        allowed=lambda: {n: {h} for n, h in _tree(SMALL).items()},
        final=lambda: _tree({"seed.txt": b"seed", **SMALL}),
    ),
    "large-file-pull": Scenario(
        "large-file-pull",
        a_files={"big.bin": BIG_OLD},
        change=_big,
        allowed=lambda: {"big.bin": {sha(BIG_OLD), sha(BIG_NEW)}},
        final=lambda: _tree({"big.bin": BIG_NEW}),
    ),
    "local-scan": Scenario(
        "local-scan",
        a_files={"seed.txt": b"seed"},
        change=lambda a, b: _write(b, LOCAL),
        keep_on_b=lambda: set(_tree(LOCAL).values()),
        allowed=lambda: {n: {h} for n, h in _tree(LOCAL).items()},
        final=lambda: _tree({"seed.txt": b"seed", **LOCAL}),
    ),
    "directory-rename": Scenario(
        "directory-rename",
        a_files=PHOTOS,
        change=_rename_photos,
        keep_on_b=lambda: set(_tree(PHOTOS).values()),
        final=lambda: {n.replace("photos/", "albums/"): h for n, h in _tree(PHOTOS).items()},
    ),
    "conflict": Scenario(
        "conflict",
        a_files={"doc.txt": DOC_OLD},
        change=_conflict,
        keep_on_b=lambda: {sha(DOC_B)},
        edited_on_b=frozenset({"doc.txt"}),
        allowed=lambda: {"doc.txt": {sha(DOC_A), sha(DOC_B)}},
    ),
    "versioning-move": Scenario(
        "versioning-move",
        a_files=NOTES,
        change=_versioning_change,
        versioning="trashcan",
        keep_on_b=lambda: set(_tree(NOTES).values()),
        allowed=lambda: {n: {sha(NOTES[n]), sha(d)} for n, d in NOTES_NEW.items()},
        final=lambda: _tree(NOTES_NEW),
    ),
}


def cut_points(total: int, rng: random.Random) -> list[int]:
    mode = os.environ.get("P2PSYNC_POWERLOSS_CUTS", "2")
    if mode == "all":
        return list(range(1, total + 1))
    return sorted(rng.sample(range(1, total + 1), min(int(mode), total)))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_power_cut(tmp_path: Path, name: str, outcomes) -> None:
    scenario = SCENARIOS[name]
    bench = Bench(tmp_path, scenario)
    bench.prepare()
    first = bench.run(None)  # cut once the change converged: how many syncs it takes
    seed = int(os.environ.get("P2PSYNC_SEED", "25"))
    points = cut_points(first.syncs, random.Random(f"{seed}-{name}"))
    print(f"{name}: {first.syncs} sync requests; cutting at {points} (seed {seed})")
    for n in points:
        trial = bench.run(n)
        assert trial.outcome == "converged", f"{name}: cut at sync {n}"
        print(f"  cut before sync {n}: {trial.survived} user files survived, converged")
    outcomes.record(
        "power",
        f"power cut during {name.replace('-', ' ')}",
        "converged, nothing lost",
        trials=len(points) + 1,
        detail=f"{first.syncs} sync requests; cut at {points[:12]}{'...' if len(points) > 12 else ''}; seed {seed}",
    )
