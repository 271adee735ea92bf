"""The bench deletes a run's directory at once unless it holds many files."""

from __future__ import annotations

from pathlib import Path

from bench.catalog import PRESETS
from bench.context import Context, holds_many_files


def _tree(root: Path, files: int) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(files):
        (root / "sub" / f"f{i}").write_bytes(b"x")
    return root


def test_holds_many_files_counts_entries_up_to_the_limit(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", 5)
    assert holds_many_files(tree, 5)  # sub + 5 files
    assert not holds_many_files(tree, 6)


def test_small_run_dir_is_deleted_and_a_big_one_waits_for_the_end(tmp_path: Path) -> None:
    ctx = Context(tmp_path, PRESETS["tiny"])
    small = _tree(ctx.new_run_dir(), 3)
    ctx.finish_run_dir(small, "small")
    assert not small.exists()
    assert not (tmp_path / "deleted-at-end").exists()

    big = _tree(ctx.new_run_dir(), 1001)
    ctx.finish_run_dir(big, "big")
    assert not big.exists()
    (aside,) = (tmp_path / "deleted-at-end").iterdir()
    assert len(list((aside / "sub").iterdir())) == 1001


def test_a_big_run_dir_is_deleted_at_once_when_the_disk_is_short_of_room(
    tmp_path: Path,
) -> None:
    """Workload k's runs hold 8 GiB each: moved aside, they filled the disk mid-run."""
    ctx = Context(tmp_path, PRESETS["tiny"], defer_delete_min_free=2**62)
    big = _tree(ctx.new_run_dir(), 1001)
    ctx.finish_run_dir(big, "big")
    assert not big.exists()
    assert not (tmp_path / "deleted-at-end").exists()
