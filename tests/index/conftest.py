"""Fixtures for the index store tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from index_helpers import LOCAL

from p2psync.index import IndexStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IndexStore]:
    s = IndexStore.open(tmp_path / "index.db", LOCAL)
    try:
        yield s
    finally:
        s.close()
