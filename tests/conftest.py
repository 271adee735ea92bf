"""Fixtures shared by more than one area of the tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Any]:
    """One Playwright (sync API) for the whole run. Its event loop runs for as long as it
    lives, so a second ``sync_playwright()`` in the same process fails: the browser tests
    of every area (tests/web, tests/links) launch their browsers from this one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p
