"""Hostile and random BEP input: whatever a Syncthing-speaking peer sends, the BEP codec
yields events, NEED_DATA/ConnectionClosed or a RemoteProtocolError — nothing else — and
whatever it accepts survives being sent back. The hostile frames are kept as files in
fuzz/corpus-bep for `fuzz/fuzz_bep.py` (libFuzzer/atheris)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import lz4.block
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_support import hello, sample_messages

from p2psync.protocol.bep import BepCodec
from p2psync.protocol.bep import proto as pb
from p2psync.protocol.connection import Connection
from p2psync.protocol.messages import ClusterConfig, Response

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))
from fuzz_bep import check, hostile_frames  # noqa: E402

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_stream() -> bytes:
    """A peer's Hello, ClusterConfig and the sample messages (no Responses), as BEP bytes."""
    peer = Connection(hello("beta"), wire=BepCodec())
    out = peer.start() + peer.send(ClusterConfig())
    for m in sample_messages():
        if not isinstance(m, Response):
            out += peer.send(m)
    return out


@pytest.mark.parametrize("name", sorted(hostile_frames()))
def test_each_hostile_frame_is_a_remote_error_or_harmless(name: str) -> None:
    check(bytes([7]) + hostile_frames()[name])  # raises only on a real defect


@FUZZ
@given(st.data())
def test_mutated_streams_only_yield_events_or_remote_errors(data: st.DataObject) -> None:
    stream = bytearray(valid_stream())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(stream) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            stream[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            stream[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del stream[i : i + data.draw(st.integers(1, 16))]
    check(bytes([data.draw(st.integers(0, 255))]) + bytes(stream))


def test_the_corpus_on_disk_matches_the_hostile_frames() -> None:
    corpus = ROOT / "fuzz" / "corpus-bep"
    on_disk = {p.name: p.read_bytes() for p in corpus.iterdir()}
    assert on_disk == {f"hostile-{k}": v for k, v in hostile_frames().items()}


def test_an_lz4_body_that_expands_past_its_claim_is_refused() -> None:
    raw = pb.Index(folder="x" * 200).SerializeToString()
    block = lz4.block.compress(raw, store_size=False)
    body = struct.pack(">I", 10) + block  # claims 10 bytes, expands to more
    header = pb.Header(type=1, compression=1).SerializeToString()
    frame = struct.pack(">H", len(header)) + header + struct.pack(">I", len(body)) + body
    check(bytes([0]) + frame)
