"""Write the seed corpus for fuzz/fuzz_decoder.py: valid streams and one file per
hostile checklist case (tests/reliability/hostile_corpus.py), each prefixed by a valid
Hello + ClusterConfig so the fuzzer starts past the handshake.

    .venv/bin/python fuzz/make_corpus.py        # rewrites fuzz/corpus/
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from hostile_corpus import cases, hello, valid_stream  # noqa: E402

from p2psync.protocol.connection import Connection  # noqa: E402
from p2psync.protocol.messages import Close, ClusterConfig, Ping, Request  # noqa: E402

OUT = Path(__file__).resolve().parent / "corpus"


def handshake() -> tuple[Connection, bytes]:
    peer = Connection(hello("seed"))
    return peer, peer.start() + peer.send(ClusterConfig())


def seeds() -> dict[str, bytes]:
    out = {"valid-index": valid_stream()}
    peer, start = handshake()
    out["valid-ping-close"] = start + peer.send(Ping()) + peer.send(Close(reason="bye"))
    peer, start = handshake()
    out["valid-request"] = start + peer.send(
        Request(id=1, folder="shared", name="a/b", offset=0, size=131072, hash=b"\x01" * 32)
    )
    peer, start = handshake()
    out["response-without-request"] = (
        start + b"\x00\x00\x00\x05\x04\x83\xa2id"
    )  # truncated Response
    for case in cases():
        _, start = handshake()
        slug = hashlib.sha256(case.what.encode()).hexdigest()[:10]
        out[f"bad-{case.item.split()[0]}-{slug}"] = start + case.data
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    for name, data in seeds().items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(list(OUT.iterdir()))} seeds to {OUT}")


if __name__ == "__main__":
    main()
