"""CI's run of fuzz/fuzz_connection.py: every seed of fuzz/corpus_connection/ and a
fixed set of mutations of them go through a real ConnectionManager.serve_incoming
(TLS accept, Hello, pending or a trusted PeerConnection). Each must end the connection
by itself, free its place under the caps and log no error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))

import fuzz_connection  # noqa: E402

SEED = 20261207
MUTATIONS = 150


def test_the_seed_corpus_covers_every_mode() -> None:
    seeds = [p.read_bytes() for p in fuzz_connection.CORPUS.iterdir()]
    assert {s[0] % 4 for s in seeds} == {0, 1, 2, 3}
    assert len(seeds) == len(fuzz_connection.seeds())


@pytest.mark.parametrize("name", sorted(p.name for p in fuzz_connection.CORPUS.iterdir()))
def test_seed(name: str) -> None:
    fuzz_connection.check((fuzz_connection.CORPUS / name).read_bytes())


def test_seeded_mutations() -> None:
    inputs: list[bytes] = []
    fuzz_connection.run_mutations(MUTATIONS, SEED, on_input=inputs.append)
    for data in inputs:
        try:
            fuzz_connection.check(data)
        except BaseException:
            print(f"failing input: {data.hex()}")
            raise
