"""The pure debounce/aggregation rules, with explicit times."""

from __future__ import annotations

import pytest

from p2psync.watcher.aggregate import (
    Aggregator,
    collapse,
    is_watch_internal,
    relative_name,
)


@pytest.mark.parametrize(
    ("root", "path", "sep", "expected"),
    [
        ("/data/f", "/data/f/a.txt", "/", "a.txt"),
        ("/data/f", "/data/f/sub/dir/b", "/", "sub/dir/b"),
        ("/data/f/", "/data/f/a", "/", "a"),
        ("/data/f", "/data/f", "/", ""),
        ("/data/f", "/data/f/", "/", ""),
        ("/data/f", "/data/fx/a", "/", None),  # a sibling sharing the prefix is outside
        ("/data/f", "/elsewhere/a", "/", None),
        ("/", "/etc/x", "/", "etc/x"),
        ("C:\\Users\\me\\F", "C:\\Users\\me\\F\\sub\\a.txt", "\\", "sub/a.txt"),
    ],
)
def test_relative_name(root: str, path: str, sep: str, expected: str | None) -> None:
    assert relative_name(root, path, sep) == expected


@pytest.mark.parametrize(
    ("name", "internal"),
    [
        (".p2psync.report.txt.tmp", True),
        ("deep/dir/.p2psync.x.tmp", True),
        ("dir/.p2psync.partial.tmp/inside", True),  # any component
        (".p2pversions", True),
        (".p2pversions/a~20240101-000000.txt", True),
        (".p2psync", True),
        (".p2psync/state", True),
        (".p2pignore", False),  # editing ignores must trigger a rescan
        ("sub/.p2pversions", False),  # only the root-level versions dir is ours
        ("sub/.p2psync", False),
        ("report.tmp", False),
        (".p2psync.notatemp", False),
        ("a.txt", False),
    ],
)
def test_is_watch_internal(name: str, internal: bool) -> None:
    assert is_watch_internal(name) is internal


def test_collapse_keeps_small_batches_sorted_and_deduplicated() -> None:
    assert collapse(["b", "a/x", "a/y", "b"], max_per_dir=3) == ["a/x", "a/y", "b"]


def test_collapse_drops_names_under_a_changed_directory() -> None:
    assert collapse(["d", "d/x", "d/e/f", "dx/y"], max_per_dir=10) == ["d", "dx/y"]


def test_collapse_threshold_is_more_than_n() -> None:
    three = [f"d/{i}" for i in range(3)]
    assert collapse(three, max_per_dir=3) == sorted(three)
    assert collapse([*three, "d/3", "other"], max_per_dir=3) == ["d", "other"]


def test_collapse_cascades_up_the_tree() -> None:
    # Four crowded subdirectories collapse into four names, crowding their parent in turn.
    names = [f"top/s{d}/f{i}" for d in range(4) for i in range(5)] + ["keep/me"]
    assert collapse(names, max_per_dir=3) == ["keep/me", "top"]


def test_collapse_at_the_root_means_full_rescan() -> None:
    assert collapse([f"f{i}" for i in range(5)], max_per_dir=4) is None


def test_quiet_period_restarts_with_each_event() -> None:
    agg = Aggregator(delay=0.1, max_delay=1.0)
    assert agg.deadline() is None and not agg.pending
    agg.add(["a"], now=10.0)
    assert agg.deadline() == pytest.approx(10.1)
    agg.add(["b"], now=10.05)
    assert agg.deadline() == pytest.approx(10.15)
    assert not agg.is_due(10.14)
    assert agg.is_due(10.15)
    assert agg.take() == ["a", "b"]
    assert agg.deadline() is None and not agg.pending


def test_max_delay_caps_continuous_writes() -> None:
    agg = Aggregator(delay=0.1, max_delay=1.0)
    t = 0.0
    while t < 2.0:
        agg.add(["busy.log"], now=t)
        if agg.is_due(t):
            break
        t += 0.05
    assert t == pytest.approx(1.0)  # due at first + max_delay although never quiet
    assert agg.take() == ["busy.log"]
    agg.add(["busy.log"], now=1.05)  # the next batch starts its own clock
    assert agg.deadline() == pytest.approx(1.15)


def test_take_collapses_with_the_configured_threshold() -> None:
    agg = Aggregator(delay=0.1, max_delay=1.0, max_per_dir=10)
    agg.add([f"burst/f{i}" for i in range(11)], now=0.0)
    agg.add(["other.txt"], now=0.01)
    assert agg.take() == ["burst", "other.txt"]


def test_full_rescan_swallows_names_and_resets() -> None:
    agg = Aggregator()
    agg.add(["a"], now=0.0)
    agg.add_full_rescan(now=0.02)
    agg.add(["b"], now=0.03)
    assert agg.deadline() == pytest.approx(0.13)
    assert agg.take() is None
    agg.add(["c"], now=1.0)
    assert agg.take() == ["c"]


def test_root_name_requests_full_rescan() -> None:
    agg = Aggregator()
    agg.add(["a", ""], now=0.0)
    assert agg.take() is None


def test_pending_names_stay_bounded() -> None:
    agg = Aggregator(max_per_dir=100, max_pending=1000)
    agg.add((f"big/f{i}" for i in range(5000)), now=0.0)  # collapses to "big" on the way
    assert agg.take() == ["big"]
    agg.add((f"d{i}/f" for i in range(1001)), now=1.0)  # cannot collapse: give up on names
    assert agg.take() is None


def test_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError):
        Aggregator(delay=2.0, max_delay=1.0)
    with pytest.raises(ValueError):
        Aggregator(max_per_dir=0)
