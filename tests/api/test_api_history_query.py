"""``GET /api/history``'s parameters, parsed without a daemon."""

from __future__ import annotations

import pytest

from p2psync.api.history import HistoryQuery, kinds_of, parse_query
from p2psync.errors import UnsafePathError, UsageError
from p2psync.history.changes import Kind


def test_parameters_become_a_query() -> None:
    assert parse_query({}) == HistoryQuery()
    q = parse_query(
        {"folder": "f", "path": "/a/b/", "since": "10", "kind": "created,renamed", "q": "x"}
        | {"before": "42", "limit": "200", "device": "laptop"}
    )
    assert q == HistoryQuery(
        folder="f",
        path="a/b",
        since=10.0,
        device="laptop",
        kinds=(Kind.CREATED, Kind.RENAMED_FROM, Kind.RENAMED_TO),
        contains="x",
        before=42,
        limit=200,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kind": "exploded"}, "no kind of change 'exploded'"),
        ({"limit": "0"}, "limit must be"),
        ({"before": "x"}, "before must be a number"),
        ({"q": "x" * 201}, "longer than 200"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_query(params)


def test_an_unsafe_path_is_refused() -> None:
    with pytest.raises(UnsafePathError):
        parse_query({"folder": "f", "path": "../etc"})


def test_kinds() -> None:
    assert kinds_of("") is None and kinds_of(" , ") is None
    assert kinds_of("deleted,conflict copy made") == (Kind.DELETED, Kind.CONFLICT_COPY)
