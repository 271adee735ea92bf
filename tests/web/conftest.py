"""Browser tests: Playwright for Python driving Debian's Chromium against real daemons.

Playwright's own browser download is not used (nor reachable): the tests launch
/usr/bin/chromium, and are skipped, saying so, only when it is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webhelpers import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, Daemon


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every browser test to skip, with the reason, when Chromium is not installed."""
    needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
    for item in items:
        if "tests/web/" in str(item.path).replace("\\", "/"):
            item.add_marker(needs_chromium)


@pytest.fixture
def start_daemon(tmp_path) -> Iterator:
    """Start named daemons for one test; all are stopped at its end."""
    started: list[Daemon] = []

    def start(name: str) -> Daemon:
        started.append(Daemon(tmp_path, name))
        return started[-1]

    try:
        yield start
    finally:
        for d in started:
            d.stop()


@pytest.fixture(scope="session")
def browser(playwright_session):
    b = playwright_session.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context()
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()
