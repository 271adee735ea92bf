"""Issue 25.3: an index written by each released schema version, built by that
version's own code (``fixtures/build_index_fixture.py`` run on its checkout) and kept
here, opens in the current code with every record, need and count intact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from p2psync.index.sqlite_schema import MIGRATIONS, connect, schema_version
from p2psync.index.store import IndexStore

FIXTURES = Path(__file__).parent / "fixtures"
LOCAL = bytes(range(32))
PEER = bytes(range(32, 64))
FOLDER = "docs"
# schema version -> the commit whose code wrote the fixture
BUILT_BY = {1: "9f5510c", 2: "dd8a0c5", 3: "1a00c2b"}


def _record(fi: Any) -> dict[str, Any]:
    return {
        "name": fi.name,
        "type": int(fi.type),
        "size": fi.size,
        "permissions": fi.permissions,
        "modified_ns": fi.modified_ns,
        "modified_by": fi.modified_by,
        "deleted": fi.deleted,
        "version": [list(c) for c in fi.version],
        "block_size": fi.block_size,
        "blocks": [[b.offset, b.size, b.hash.hex()] for b in fi.blocks],
        "symlink_target": fi.symlink_target,
    }


def _read(store: IndexStore) -> dict[str, Any]:
    return {
        "local": sorted((_record(f) for f in store.iter_local(FOLDER)), key=lambda r: r["name"]),
        "peer": sorted(
            (_record(f) for f in store.iter_device(FOLDER, PEER)), key=lambda r: r["name"]
        ),
        "need": sorted(f.name for f in store.iter_need(FOLDER)),
        "peer_index_id": store.index_id(FOLDER, PEER),
        "local_counts": list(store.counts(FOLDER)),
        "global_counts": list(store.global_counts(FOLDER)),
        "need_counts": list(store.need_counts(FOLDER)),
    }


def test_every_schema_version_has_a_fixture() -> None:
    assert sorted(BUILT_BY) == list(range(1, len(MIGRATIONS) + 1)), (
        "a new schema version needs a fixture built by the release that ships it"
    )


@pytest.mark.parametrize("version", sorted(BUILT_BY))
def test_an_index_from_an_older_release_opens_with_everything_in_it(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "index.sqlite3"
    shutil.copyfile(FIXTURES / f"index-v{version}.sqlite3", path)
    conn = connect(path)
    try:
        assert schema_version(conn) == version
    finally:
        conn.close()
    expected = json.loads((FIXTURES / "expected_index.json").read_text())
    with IndexStore.open(path, LOCAL) as store:
        assert _read(store) == expected
    conn = connect(path)
    try:
        assert schema_version(conn) == len(MIGRATIONS)
    finally:
        conn.close()
    with IndexStore.open(path, LOCAL) as store:  # a second open migrates nothing more
        assert _read(store) == expected
