"""Coverage-guided fuzz target for the BEP codec (atheris / libFuzzer), and the hostile
BEP frames kept as its seed corpus (fuzz/corpus-bep, written by ``--write-corpus``).

Property: whatever bytes a Syncthing-speaking peer sends after our Hello exchange,
feeding them to a sans-IO Connection with the BEP codec (split at a data-chosen point,
then EOF) only ever yields events, NEED_DATA/ConnectionClosed or a RemoteProtocolError;
a decoded message must survive re-encoding.

    .venv/bin/python fuzz/fuzz_bep.py fuzz/corpus-bep -max_total_time=300
    .venv/bin/python fuzz/fuzz_bep.py --write-corpus
"""

from __future__ import annotations

import struct
import sys
from dataclasses import replace
from pathlib import Path

from p2psync.errors import RemoteProtocolError
from p2psync.protocol.bep import BepCodec
from p2psync.protocol.bep import proto as pb
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import ClusterConfig, ConnectionClosed, Hello, Index, IndexUpdate

OUR_HELLO = Hello(device_name="fuzz", client_name="p2psync", client_version="fuzz", timestamp=1)
THEIR_HELLO = Hello(device_name="st", client_name="syncthing", client_version="v1", timestamp=1)
CORPUS = Path(__file__).parent / "corpus-bep"


def _frame(header: bytes, body: bytes, *, header_len: int | None = None) -> bytes:
    length = len(header) if header_len is None else header_len
    return struct.pack(">H", length) + header + struct.pack(">I", len(body)) + body


def _header(mtype: int, compression: int = 0) -> bytes:
    return pb.Header(type=mtype, compression=compression).SerializeToString()


def _preamble() -> bytes:
    """A well-behaved peer's Hello and ClusterConfig: hostile frames come after them."""
    peer = Connection(THEIR_HELLO, wire=BepCodec())
    return peer.start() + peer.send(ClusterConfig())


def _index(name: bytes, ftype: int, **fields: object) -> bytes:
    index = pb.Index(folder="default")
    entry = index.files.add(name=name, type=ftype, **fields)
    entry.version.counters.add(id=1, value=1)
    if ftype == 0:
        entry.blocks.add(offset=0, size=10, hash=b"h" * 32)
    return index.SerializeToString()


def hostile_frames() -> dict[str, bytes]:
    """Each class of hostile BEP input, after a valid Hello and ClusterConfig."""
    cases = {
        "lz4-claims-2gib": _frame(_header(1, 1), struct.pack(">I", 0x7FFFFFFF) + b"\x00"),
        "lz4-garbage": _frame(_header(1, 1), struct.pack(">I", 100) + b"\xff" * 16),
        "lz4-short": _frame(_header(1, 1), b"\x00\x01"),
        "header-too-long": struct.pack(">H", 0x7FFF),
        "header-negative": struct.pack(">H", 0x8001),
        "body-negative": struct.pack(">H", 2) + _header(1) + struct.pack(">I", 0xFFFFFFFF),
        "body-4gib-claim": struct.pack(">H", 2) + _header(4) + struct.pack(">I", 0xFFFFFFF0),
        "unknown-type": _frame(_header(99), b""),
        "unknown-compression": _frame(_header(1, 7), b""),
        "garbage-protobuf": _frame(_header(1), b"\xff\xff\xff\xff"),
        "name-dotdot": _frame(_header(1), _index(b"../escape", 1)),
        "name-absolute": _frame(_header(1), _index(b"/etc/passwd", 1)),
        "illegal-block-size": _frame(_header(1), _index(b"f", 0, size=10, block_size=3)),
        "blocks-do-not-cover-size": _frame(
            _header(1), _index(b"f", 0, size=99, block_size=128 * 1024)
        ),
        "request-huge-size": _frame(
            _header(3),
            pb.Request(
                size=0x7FFFFFFF, id=1, folder="d", name=b"f", hash=b"h" * 32
            ).SerializeToString(),
        ),
        "request-no-hash": _frame(
            _header(3), pb.Request(id=1, folder="d", name=b"f", size=10).SerializeToString()
        ),
        "request-negative-offset": _frame(
            _header(3),
            pb.Request(
                id=1, folder="d", name=b"f", size=10, offset=-1, hash=b"h" * 32
            ).SerializeToString(),
        ),
        "response-unasked": _frame(
            _header(4), pb.Response(id=12345, data=b"x").SerializeToString()
        ),
    }
    preamble = _preamble()
    out = {name: preamble + data for name, data in cases.items()}
    # our own protocol's magic where BEP's Hello is due
    out["p2psync-hello-instead"] = struct.pack(">IH", 0x50325301, 2) + b"\x80\x80"
    return out


def check(data: bytes) -> None:
    if not data:
        return
    cut = data[0] % (len(data) or 1)
    body = data[1:]
    conn = Connection(OUR_HELLO, wire=BepCodec())
    conn.start()
    try:
        for part in [p for p in (body[:cut], body[cut:]) if p] + [b""]:
            conn.receive_data(part)
            for _ in range(len(part) + 4):
                ev = conn.next_event()
                if ev is NEED_DATA or isinstance(ev, ConnectionClosed):
                    break
                if isinstance(ev, Hello):
                    continue
                if isinstance(ev, Index | IndexUpdate):
                    ev = replace(ev, unsupported=())  # notes for this device, never sent
                again = BepCodec().encode_message(ev)  # accepted input must be re-sendable
                parsed = BepCodec().parse_frame(again)
                assert parsed is not None and parsed[0] == ev, "decode/encode round trip differs"
            else:
                raise AssertionError("next_event neither consumed data nor asked for more")
    except RemoteProtocolError:
        pass


def main() -> None:
    if "--write-corpus" in sys.argv:
        CORPUS.mkdir(exist_ok=True)
        for name, data in hostile_frames().items():
            (CORPUS / f"hostile-{name}").write_bytes(data)
        return
    import atheris

    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
