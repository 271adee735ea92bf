"""CI's run of fuzz/fuzz_connection.py: every seed of fuzz/corpus_connection/ and a
fixed set of mutations of them go through a real ConnectionManager.serve_incoming
(TLS accept, Hello, pending or a trusted PeerConnection). Each must end the connection
by itself, free its place under the caps and log no error."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))

import fuzz_connection  # noqa: E402

SEED = 20261207
MUTATIONS = 150


def test_seeds_and_seeded_mutations(outcomes) -> None:
    seeds = [p.read_bytes() for p in fuzz_connection.CORPUS.iterdir()]
    assert len(seeds) == len(fuzz_connection.seeds()), "run fuzz_connection.py --write-corpus"
    assert {s[0] % 4 for s in seeds} == {0, 1, 2, 3}, "a connection mode has no seed"
    inputs: list[bytes] = []
    fuzz_connection.run_mutations(MUTATIONS, SEED, on_input=inputs.append)  # seeds first
    for data in inputs:
        try:
            fuzz_connection.check(data)
        except BaseException:
            print(f"failing input: {data.hex()}")
            raise
    outcomes.record(
        "listener",
        "fuzzed whole connections (TLS handshake included): seeds + seeded mutations",
        "each ended by the daemon, place freed, no error logged",
        trials=len(inputs),
        detail=f"seed {SEED}; make fuzz-connection for coverage-guided runs",
    )
