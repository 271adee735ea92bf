"""The share-links pages' context, from API data and the create form (pure, no daemon)."""

from __future__ import annotations

import pytest

from p2psync.errors import UsageError
from p2psync.web import links_view as lv

NOW = 1_800_000_000.0


def link(**extra) -> dict:
    return {
        "id": "L1",
        "token": "tok",
        "folder": "docs",
        "path": "",
        "created": NOW - 100,
        "expires": None,
        "max_downloads": None,
        "downloads": 0,
        "revoked": None,
        "has_password": False,
        "state": "active",
        "url": "https://127.0.0.1:4443/s/tok/",
        "recent_downloads": [],
        **extra,
    }


def test_the_create_form_becomes_the_services_arguments() -> None:
    assert lv.create_args(
        {"folder": "docs", "path": "/a/b.pdf/", "expires": "1d", "password": "pw"}
        | {"max_downloads": " 3 "}
    ) == {
        "folder": "docs",
        "path": "a/b.pdf",
        "expires_in": 86_400.0,
        "password": "pw",
        "max_downloads": 3,
    }
    assert lv.create_args({"folder": "docs", "expires": "never", "password": ""}) == {
        "folder": "docs",
        "path": "",
        "expires_in": None,
        "password": None,
        "max_downloads": None,
    }
    assert lv.create_args({"folder": "docs"})["expires_in"] == 7 * 86_400.0  # the default


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"folder": ""}, "choose the folder"),
        ({"folder": "docs", "expires": "5y"}, "the expiry must be one of"),
        ({"folder": "docs", "max_downloads": "0"}, "maximum downloads must be a whole number"),
        ({"folder": "docs", "max_downloads": "two"}, "not 'two'"),
        ({"folder": "docs", "password": "x" * 1025}, "longer than 1024"),
    ],
)
def test_bad_input_is_refused_naming_the_field(form: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        lv.create_args(form)


def test_rows_newest_first_with_state_limits_and_the_last_download() -> None:
    old = link(id="L0", created=NOW - 1000, expires=NOW - 1, state="expired")
    new = link(
        path="a/b.pdf",
        has_password=True,
        downloads=1,
        max_downloads=3,
        recent_downloads=[{"at": NOW - 5, "address": "127.0.0.1", "what": "a/b.pdf"}],
    )
    rows = lv.link_rows([old, new], NOW)
    assert [r["id"] for r in rows] == ["L1", "L0"]
    assert rows[0]["target"] == "docs/a/b.pdf" and rows[1]["target"] == "docs"
    assert rows[0]["used"] == "1 / 3" and rows[1]["used"] == "0 / ∞"
    assert rows[0]["last_download"]["address"] == "127.0.0.1"
    assert rows[1]["last_download"] is None
    assert rows[1]["expired"] and not rows[1]["active"] and rows[0]["active"]
    assert rows[0]["page"] == "/ui/links/L1" and rows[0]["has_password"]


def test_the_listener_notice_warns_when_exposed_and_says_when_off() -> None:
    off = lv.listener_notice({"running": False, "error": ""})
    assert not off["running"] and "starts when the first link is created" in off["note"]
    failed = lv.listener_notice({"running": False, "error": "port taken"})
    assert failed["note"] == "The link listener is not running: port taken"
    exposed = lv.listener_notice(
        {"running": True, "address": "0.0.0.0:4443", "fingerprint": "AB:CD", "warning": "w!"}
    )
    assert exposed == {
        "running": True,
        "address": "0.0.0.0:4443",
        "fingerprint": "AB:CD",
        "warning": "w!",
        "note": "",
    }


def test_the_download_log_is_bounded() -> None:
    rows = [
        {"at": float(i), "address": "::1", "what": "x", "bytes": 3, "outcome": "complete"}
        for i in range(lv.MAX_DOWNLOADS_SHOWN + 5)
    ]
    assert len(lv.download_rows(rows)) == lv.MAX_DOWNLOADS_SHOWN
