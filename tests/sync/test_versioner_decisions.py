"""The versioner's pure parts: archive names and which versions each kind drops."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2psync.protocol.names import is_valid_name
from p2psync.sync.versioner import (
    DAY_S,
    VersionEntry,
    archive_name_for,
    parse_archive_name,
    simple_to_remove,
    staggered_to_remove,
    trashcan_to_remove,
    version_tag,
)

T0 = dt.datetime(2025, 3, 1, 14, 22, 33, tzinfo=dt.UTC).timestamp()
HOUR = 3600


def entry(name: str, when: float) -> VersionEntry:
    return VersionEntry(
        name=name,
        version_time=dt.datetime.fromtimestamp(when, dt.UTC),
        size=1,
        archive_name=archive_name_for(name, when),
    )


def removed_ages(
    versions: list[VersionEntry], now: float, removed: list[VersionEntry]
) -> list[float]:
    doomed = {v.archive_name for v in removed}
    return sorted((now - v.timestamp for v in versions if v.archive_name in doomed), reverse=True)


def test_tag_is_utc_syncthing_format() -> None:
    assert version_tag(T0) == "20250301-142233"


@pytest.mark.parametrize(
    ("name", "archived"),
    [
        ("report.docx", ".p2pversions/report~20250301-142233.docx"),
        ("a/b/archive.tar.gz", ".p2pversions/a/b/archive.tar~20250301-142233.gz"),
        ("Makefile", ".p2pversions/Makefile~20250301-142233"),
        ("d/.bashrc", ".p2pversions/d/.bashrc~20250301-142233"),
        (".config.toml", ".p2pversions/.config~20250301-142233.toml"),
        ("x~y.txt", ".p2pversions/x~y~20250301-142233.txt"),
        ("trailing.", ".p2pversions/trailing~20250301-142233."),
    ],
)
def test_tagged_names_round_trip(name: str, archived: str) -> None:
    assert archive_name_for(name, T0) == archived
    original, when = parse_archive_name(archived)
    assert original == name
    assert when == dt.datetime.fromtimestamp(T0, dt.UTC)


def test_untagged_names() -> None:
    assert archive_name_for("d/a.txt", None) == ".p2pversions/d/a.txt"
    assert parse_archive_name(".p2pversions/d/a.txt") == ("d/a.txt", None)
    # looks like a tag but is no date: untagged
    assert parse_archive_name(".p2pversions/a~20251399-990000.txt") == (
        "a~20251399-990000.txt",
        None,
    )
    with pytest.raises(ValueError):
        parse_archive_name("d/a.txt")


def test_a_name_holding_a_tag_keeps_it() -> None:
    archived = archive_name_for("a~20240101-000000.txt", T0)
    assert parse_archive_name(archived)[0] == "a~20240101-000000.txt"


_segment = st.text(st.characters(blacklist_characters="/\\\x00"), min_size=1, max_size=20)


@given(st.lists(_segment, min_size=1, max_size=3), st.integers(0, 4_000_000_000))
def test_any_valid_name_round_trips(parts: list[str], when: int) -> None:
    name = "/".join(parts)
    if not is_valid_name(name):
        return
    original, tag_time = parse_archive_name(archive_name_for(name, when))
    assert original == name
    assert tag_time is not None and tag_time.timestamp() == when


def test_trashcan_drops_by_age() -> None:
    versions = [entry("a", T0), entry("b", T0 + 2 * DAY_S), entry("c", T0 + 3 * DAY_S)]
    now = T0 + 3 * DAY_S + 1  # ages: 3 d + 1 s, 1 d + 1 s, 1 s
    assert trashcan_to_remove(versions, now, 0) == []
    assert [v.name for v in trashcan_to_remove(versions, now, 2)] == ["a"]
    assert [v.name for v in trashcan_to_remove(versions, now, 1)] == ["a", "b"]
    assert [v.name for v in trashcan_to_remove(versions, T0 + 3 * DAY_S, 3)] == []
    assert [v.name for v in trashcan_to_remove(versions, T0 + 10 * DAY_S, 3)] == ["a", "b", "c"]


def test_simple_keeps_newest_n_per_file() -> None:
    versions = [entry("a", T0 + i) for i in (4, 0, 3, 1, 2)] + [entry("b", T0), entry("b", T0 + 1)]
    removed = simple_to_remove(versions, T0 + 10, keep=3)
    assert sorted((v.name, v.timestamp - T0) for v in removed) == [("a", 0), ("a", 1)]


def test_simple_keeps_at_least_one_and_applies_cleanout() -> None:
    versions = [entry("a", T0), entry("a", T0 + 1)]
    assert [v.timestamp for v in simple_to_remove(versions, T0 + 2, keep=0)] == [T0]
    old = [entry("a", T0 - 10 * DAY_S), entry("a", T0 - 1 * DAY_S), entry("a", T0)]
    removed = simple_to_remove(old, T0, keep=5, cleanout_days=5)
    assert [v.timestamp for v in removed] == [T0 - 10 * DAY_S]


# age of each version at ``now`` (oldest first) -> removed by staggered thinning (max age 365 d)
STAGGERED_TABLE = [
    (400 * DAY_S, True),  # older than the maximum age
    (40 * DAY_S, False),  # oldest remaining: always kept
    (36 * DAY_S, True),  # beyond 30 days: one per week; 4 days after the last kept
    (33 * DAY_S, False),  # 7 days after the last kept
    (20 * DAY_S, False),  # within 30 days: one per day
    (20 * DAY_S - 12 * HOUR, True),
    (19 * DAY_S, False),
    (10 * HOUR, False),  # within a day: one per hour
    (9.5 * HOUR, True),
    (9 * HOUR, False),
    (3000, False),  # within an hour: one per 30 s
    (2990, True),
    (2970, False),
    (20, False),
    (5, True),  # the newest may go: the oldest of each slot survives (as in Syncthing)
    (0, True),
]


def test_staggered_thinning_table() -> None:
    now = T0
    versions = [entry("a", now - age) for age, _ in STAGGERED_TABLE]
    other = [entry("b", now - age) for age in (5, 0)]  # another file is thinned on its own
    removed = staggered_to_remove(versions + other, now, max_age_days=365)
    assert removed_ages(versions, now, removed) == [age for age, gone in STAGGERED_TABLE if gone]
    assert removed_ages(other, now, removed) == [0]


def test_staggered_without_max_age_keeps_the_oldest() -> None:
    now = T0
    versions = [entry("a", now - 400 * DAY_S), entry("a", now - 40 * DAY_S)]
    assert staggered_to_remove(versions, now, max_age_days=0) == []
    assert [v.timestamp for v in staggered_to_remove(versions, now, max_age_days=100)] == [
        now - 400 * DAY_S
    ]


def test_staggered_order_of_input_does_not_matter() -> None:
    now = T0
    versions = [entry("a", now - age) for age, _ in STAGGERED_TABLE]
    forward = {v.archive_name for v in staggered_to_remove(versions, now, 365)}
    backward = {v.archive_name for v in staggered_to_remove(list(reversed(versions)), now, 365)}
    assert forward == backward
