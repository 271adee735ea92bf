"""The daemon's log keeps per-request HTTP client lines out unless -v (issue 18.10)."""

from __future__ import annotations

import logging

import pytest

from p2psync.logsetup import QUIET_BELOW_DEBUG, setup_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    levels = {name: logging.getLogger(name).level for name in QUIET_BELOW_DEBUG}
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        if h not in saved[1]:
            h.close()
    for h in saved[1]:
        root.addHandler(h)
    root.setLevel(saved[0])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_http_requests_are_not_logged_at_info(tmp_path, restore_logging) -> None:
    setup_logging(tmp_path, logging.INFO)
    logging.getLogger("httpx").info("HTTP Request: POST https://disco/v2/ 204")
    logging.getLogger("p2psync.test").info("kept")
    for h in logging.getLogger().handlers:
        h.flush()
    text = (tmp_path / "p2psync.log").read_text()
    assert "kept" in text and "HTTP Request" not in text


def test_verbose_logs_http_requests(tmp_path, restore_logging) -> None:
    setup_logging(tmp_path, logging.DEBUG)
    logging.getLogger("httpx").info("HTTP Request: POST https://disco/v2/ 204")
    for h in logging.getLogger().handlers:
        h.flush()
    assert "HTTP Request" in (tmp_path / "p2psync.log").read_text()
