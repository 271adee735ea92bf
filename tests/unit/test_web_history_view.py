"""The history pages' context, from API entries and query strings (pure, no daemon)."""

from __future__ import annotations

import pytest

from p2psync.api.history import HistoryQuery
from p2psync.errors import UsageError
from p2psync.history.changes import Kind
from p2psync.web import history_view as hv
from p2psync.web.contexts import view_of

NOW = 1_800_000_000.0


def entry(i: int, kind: str = "modified", path: str = "a/b.txt", **extra) -> dict:
    return {
        "id": i,
        "time": "2027-01-15T08:00:00+00:00",
        "at_ns": 1_800_000_000_000_000_000 + i,
        "folder": "docs",
        "path": path,
        "kind": kind,
        "origin": "local",
        "device": "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD",
        "device_name": "laptop",
        "type": "file",
        "size": 1234,
        "detail": "",
        **extra,
    }


def test_filters_become_an_api_query_one_row_longer_than_a_page() -> None:
    f = hv.filters_from(
        {"folder": "docs", "device": "laptop", "since": "1d", "kind": "renamed", "q": " x "}
    )
    assert hv.to_query(f, NOW) == HistoryQuery(
        folder="docs",
        since=NOW - 86_400,
        device="laptop",
        kinds=(Kind.RENAMED_FROM, Kind.RENAMED_TO),
        contains="x",
        limit=hv.PAGE_ROWS + 1,
    )
    assert hv.to_query(hv.filters_from({}), NOW) == HistoryQuery(limit=hv.PAGE_ROWS + 1)
    assert hv.filters_from({"since": "all", "q": "x"}).params() == {"q": "x"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2y"}, "'since' must be one of 1h, 1d, 7d, 30d, all"),
        ({"kind": "exploded"}, "no kind of change 'exploded'"),
        ({"before": "-1"}, "'before' must be an entry number"),
    ],
)
def test_a_filter_that_makes_no_sense_is_named(params: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        hv.to_query(hv.filters_from(params), NOW)


def test_rows_show_renames_from_to_and_sizes_only_where_they_mean_something() -> None:
    rows = hv.history_rows(
        [
            entry(4, "renamed to", "new name.txt", detail="old.txt"),
            entry(3, "renamed from", "old.txt", detail="new name.txt"),
            entry(2, "deleted", "gone.txt"),
            entry(1, "modified", "dir", type="directory", detail="metadata"),
        ],
        {"docs": "Documents"},
    )
    assert [r["shown_kind"] for r in rows] == ["renamed", "renamed", "deleted", "modified"]
    assert rows[0]["rename"] == rows[1]["rename"] == ("old.txt", "new name.txt")
    assert [r["size"] for r in rows] == [1234, None, None, None]
    assert rows[0]["url"] == "/ui/history/docs/new%20name.txt"
    assert rows[0]["folder_label"] == "Documents" and rows[0]["device_name"] == "laptop"
    assert rows[3]["detail"] == "metadata" and rows[0]["detail"] == ""
    assert rows[0]["utc"] == "2027-01-15 08:00:00 UTC"


def test_a_page_is_bounded_and_links_to_the_older_one() -> None:
    entries = [entry(i) for i in range(10, 0, -1)]
    f = hv.filters_from({"folder": "docs", "kind": "deleted"})
    shown, older = hv.page_of(entries, f, rows=4)
    assert [e["id"] for e in shown] == [10, 9, 8, 7]
    assert older == "/ui/history?folder=docs&kind=deleted&before=7"
    assert hv.page_of(entries, f, rows=10) == (entries, "")


def test_urls_of_files_and_filtered_pages() -> None:
    assert hv.file_url("my docs", "a b/c#d.txt") == "/ui/history/my%20docs/a%20b/c%23d.txt"
    assert hv.filtered_url(folder="docs", kind="") == "/ui/history?folder=docs"
    assert hv.filtered_url() == "/ui/history"


def test_versions_newest_first_with_the_time_to_restore() -> None:
    rows = hv.version_rows(
        [{"name": "x", "timestamp": 10.0, "size": 1}, {"name": "x", "timestamp": 20.0, "size": 2}]
    )
    assert [r["timestamp"] for r in rows] == [20.0, 10.0]
    assert rows[0]["utc"] == "1970-01-01 00:00:20 UTC"


def test_actions_find_the_page_they_came_from() -> None:
    base = "http://127.0.0.1:8385"
    assert view_of(f"{base}/ui/history?folder=docs&q=x") == (
        "history",
        {"folder": "docs", "device": "", "since": "", "kind": "", "q": "x", "before": ""},
    )
    assert view_of(f"{base}/ui/history/my%20docs/a/b%20c.txt") == (
        "file_history",
        {"folder": "my docs", "path": "a/b c.txt"},
    )
    assert view_of(f"{base}/ui/links") == ("links", {})
    assert view_of(f"{base}/ui/links/abc") == ("link", {"id": "abc"})
