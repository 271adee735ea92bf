"""The bench's end condition: a destination tree identical to the source, names, sizes,
mtimes and content, followed cheaply name by name between full walks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import trees
from bench.errors import WorkloadFailed
from bench.trees import entry, fingerprint, wait_identical


def make_source(root: Path) -> list[str]:
    names = [f"d{i % 3}/f{i:02d}" for i in range(12)]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(64 + len(name)))
    os.symlink("d0/f00", root / "link")
    return names


def identical_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree and an exact copy of it (mtimes and symlinks kept)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_source(src)
    shutil.copytree(src, dst, symlinks=True)
    return src, dst


def copy_one(src: Path, dst: Path, name: str) -> None:
    (dst / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / name, dst / name)


def test_entry_matches_the_fingerprint(tmp_path: Path) -> None:
    make_source(tmp_path)
    fp = fingerprint(tmp_path)
    assert {name: entry(tmp_path, name) for name in fp} == fp
    assert entry(tmp_path, "missing") is None
    assert entry(tmp_path, "d0/f00/below") is None


def test_returns_once_the_last_file_arrives(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    names = make_source(src)
    os.symlink("d0/f00", dst / "link")
    todo = list(names)
    polls = 0

    def one_more_file_per_poll() -> None:  # stands for the daemon's progress
        nonlocal polls
        polls += 1
        if todo:
            copy_one(src, dst, todo.pop())

    wait_identical(src, dst, timeout=30, what="t", alive=one_more_file_per_poll)
    assert not todo
    assert fingerprint(dst) == fingerprint(src)
    assert polls >= len(names)


def test_an_extra_file_must_go_first(tmp_path: Path) -> None:
    src, dst = identical_pair(tmp_path)
    (dst / "extra").write_bytes(b"x")
    removed = []

    def remove_extra() -> None:
        if (dst / "extra").exists():
            (dst / "extra").unlink()
            removed.append(True)

    wait_identical(src, dst, timeout=30, what="t", alive=remove_extra)
    assert removed


def test_different_content_with_equal_metadata_never_matches(tmp_path: Path) -> None:
    src, dst = identical_pair(tmp_path)
    target = dst / "d1" / "f01"
    st = target.stat()
    target.write_bytes(bytes(st.st_size))  # same size, other bytes
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    with pytest.raises(WorkloadFailed, match="not identical"):
        wait_identical(src, dst, timeout=0.5, what="t")


def test_only_mtimes_differ_content_decides(tmp_path: Path) -> None:
    src, dst = identical_pair(tmp_path)
    os.utime(dst / "d2" / "f02", ns=(1, 1))

    wait_identical(src, dst, timeout=30, what="t")


def rewrite_in_place_with_old_mtime(target: Path) -> Path:
    """Workload d's file before the new version is renamed in: same size, other bytes,
    an older mtime."""
    target.write_bytes(bytes(target.stat().st_size))
    os.utime(target, ns=(1, 1))
    return target


def test_a_missing_file_times_out_and_says_which(tmp_path: Path) -> None:
    src, dst = identical_pair(tmp_path)
    (dst / "d0" / "f03").unlink()

    with pytest.raises(WorkloadFailed, match="1 missing .e.g. d0/f03"):
        wait_identical(src, dst, timeout=0.3, what="t")


def test_a_file_rewritten_in_place_is_followed_without_walking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workload d's shape: the same size, other bytes and mtime, until the new file is
    renamed in; between the first and the final walk only that name is looked at."""
    src, dst = identical_pair(tmp_path)
    target = rewrite_in_place_with_old_mtime(dst / "d1" / "f04")
    walks: list[Path] = []
    real_fingerprint = trees.fingerprint

    def counting(root: Path) -> trees.Fingerprint:
        walks.append(root)
        return real_fingerprint(root)

    monkeypatch.setattr(trees, "fingerprint", counting)
    polls = 0

    def arrives_at_the_fifth_poll() -> None:
        nonlocal polls
        polls += 1
        if polls == 5:
            shutil.copy2(src / "d1" / "f04", target)

    wait_identical(src, dst, timeout=30, what="t", alive=arrives_at_the_fifth_poll)
    assert polls >= 5
    assert walks.count(dst) == 2


def test_the_source_is_hashed_only_once_the_trees_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing the source (1 GiB for c) while the daemons work took a core from them:
    it waits until names, sizes and mtimes match, outside the timed part."""
    src, dst = identical_pair(tmp_path)
    missing = "d1/f01"
    (dst / missing).unlink()
    hashed: list[Path] = []
    real_digest = trees.digest
    monkeypatch.setattr(
        trees, "digest", lambda root, fp: hashed.append(root) or real_digest(root, fp)
    )
    polls = 0

    def alive() -> None:
        nonlocal polls
        polls += 1
        if polls == 3:
            assert hashed == []  # three polls with a name missing: nothing hashed yet
            copy_one(src, dst, missing)

    stats: dict[str, float] = {}
    wait_identical(src, dst, timeout=30, what="test", alive=alive, stats=stats)
    assert hashed == [src, dst] and stats["cpu_at_match"] > 0


def test_content_differing_with_mtimes_is_hashed_ever_more_rarely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workload d while the daemon works: the same size, other bytes and an older mtime.
    Hashing that file every second loaded the machine the daemons share; the checks back
    off (here scaled down: after 0.05 s, then every 0.1, 0.2, 0.4 s)."""
    src, dst = identical_pair(tmp_path)
    rewrite_in_place_with_old_mtime(dst / "d1" / "f04")
    hashed: list[Path] = []
    real_digest = trees.digest
    monkeypatch.setattr(
        trees, "digest", lambda root, fp: hashed.append(root) or real_digest(root, fp)
    )
    with pytest.raises(WorkloadFailed, match="not identical"):
        wait_identical(src, dst, timeout=1.0, what="t", content_check_every=(0.05, 0.4))
    checks = hashed.count(dst)
    assert 2 <= checks <= 5  # 0.05, 0.15, 0.35, 0.75 s; once per poll would be ~20
