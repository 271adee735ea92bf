"""The global pick's shortcuts (one holder; every holder on the same version) give what
the full ordering rule gives, on random holder sets; and the rows the index ranks (the
version as its stored blob) give what p2psync/rules.py gives on the entries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psync.index import codec
from p2psync.index.writes import _pick, _pick_ranked
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType
from p2psync.rules import global_and_need

VECTORS = [
    codec.encode_vector(vector.make(pairs))
    for pairs in ([(1, 1)], [(1, 2)], [(2, 1)], [(1, 1), (2, 1)], [(3, 5)])
]
KEY = codec.name_key("dir/name")


def random_rows(rng: random.Random) -> list[tuple[int, int, int, int, int, int, bytes]]:
    devices = sorted(rng.sample(range(1, 6), rng.randint(1, 4)))
    same = rng.random() < 0.6  # the shortcut's case, often
    shared = rng.choice(VECTORS)
    shared_invalid = rng.random() < 0.2
    rows = []
    for device in devices:
        rows.append(
            (
                device,
                rng.choice([0, 1]),  # file or directory
                rng.randint(0, 3),
                rng.choice([10, 20]),  # equal mtimes happen, so ties are exercised
                int(rng.random() < 0.3),
                int(shared_invalid if same else rng.random() < 0.2),
                shared if same else rng.choice(VECTORS),
            )
        )
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_shortcuts_agree_with_the_full_rule(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        rows = random_rows(rng)
        local = rng.choice([None, 6, *[row[0] for row in rows]])
        assert _pick(KEY, rows, local) == _pick_ranked(KEY, rows, local), (rows, local)


# Short IDs up to 2**64 - 1: the stored blob must keep their unsigned order.
_ids = st.integers(1, 3) | st.integers(2**63 - 1, 2**64 - 1)
_vectors = st.lists(st.tuples(_ids, st.integers(1, 3)), max_size=3).map(vector.make)
_holder = st.builds(
    FileInfo,
    name=st.just("dir/name"),
    type=st.sampled_from([FileType.FILE, FileType.DIRECTORY, FileType.SYMLINK]),
    size=st.integers(0, 3),
    modified_ns=st.integers(0, 2),
    deleted=st.booleans(),
    invalid=st.booleans(),
    version=_vectors,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_holder, min_size=1, max_size=4), st.data())
def test_ranking_stored_rows_is_the_rule_on_their_entries(
    holders: list[FileInfo], data: st.DataObject
) -> None:
    """Row i is device i + 1's entry, as ``_recompute`` selects it (device ID order)."""
    rows = [
        (
            device,
            int(fi.type),
            fi.size,
            fi.modified_ns,
            int(fi.deleted),
            int(fi.invalid),
            codec.encode_vector(fi.version),
        )
        for device, fi in enumerate(holders, start=1)
    ]
    local_did = data.draw(st.sampled_from([None, len(holders) + 1, *range(1, len(holders) + 1)]))
    local_index = None if local_did is None or local_did > len(holders) else local_did - 1
    index, need = global_and_need(holders, local_index)
    assert _pick(KEY, rows, local_did) == (rows[index], need)
