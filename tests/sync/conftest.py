"""Fixtures shared by the sync tests: a real index and a real folder in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psync.fs import BasicFS
from p2psync.index import IndexStore

LOCAL = bytes(range(32))  # the local device of every index these fixtures open


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexStore]:
    store = IndexStore.open(tmp_path / "index.db", LOCAL)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def fs(tmp_path: Path) -> BasicFS:
    root = tmp_path / "folder"
    root.mkdir()
    return BasicFS(root)
