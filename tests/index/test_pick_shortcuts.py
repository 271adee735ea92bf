"""The global pick's shortcuts (one holder; every holder on the same version) give what
the full ordering rule gives, on random holder sets."""

from __future__ import annotations

import random

import pytest

from p2psync.index import codec
from p2psync.index.writes import _pick, _pick_ranked
from p2psync.protocol import vector

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
