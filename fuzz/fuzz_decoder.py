"""Coverage-guided fuzz target for the wire decoder (atheris / libFuzzer).

Property: whatever bytes a peer sends, feeding them to a sans-IO Connection (split at
a data-chosen point, then EOF) only ever yields events, NEED_DATA/ConnectionClosed or a
RemoteProtocolError. Any other exception, or a decoded message that does not survive
re-encoding, is a crash. Without atheris, ``--hypothesis N`` runs N random mutations of
the seed corpus instead (no coverage guidance).

    .venv/bin/python fuzz/fuzz_decoder.py fuzz/corpus -max_total_time=300   # make fuzz
    .venv/bin/python fuzz/fuzz_decoder.py --hypothesis 20000
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import atheris
except ImportError:  # pragma: no cover - hypothesis fallback
    atheris = None

if atheris is not None:
    with atheris.instrument_imports():
        from p2psync.protocol import codec
        from p2psync.protocol.connection import NEED_DATA, Connection
        from p2psync.protocol.messages import ConnectionClosed, Hello
else:
    from p2psync.protocol import codec
    from p2psync.protocol.connection import NEED_DATA, Connection
    from p2psync.protocol.messages import ConnectionClosed, Hello

from p2psync.errors import RemoteProtocolError

OUR_HELLO = Hello(device_name="fuzz", client_name="p2psync", client_version="fuzz", timestamp=1)


def check(data: bytes) -> None:
    if not data:
        return
    cut = data[0] % (len(data) or 1)
    body = data[1:]
    conn = Connection(OUR_HELLO)
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
                frame = codec.encode_message(ev)  # accepted input must be re-sendable
                assert codec.parse_frame(frame) == (ev, len(frame)), (
                    "decode/encode round trip differs"
                )
            else:
                raise AssertionError("next_event neither consumed data nor asked for more")
    except RemoteProtocolError:
        pass


def run_hypothesis(examples: int) -> None:
    import random

    corpus = [p.read_bytes() for p in (Path(__file__).parent / "corpus").iterdir()]
    rng = random.Random(int.from_bytes(__import__("os").urandom(4), "big"))
    seed = rng.randrange(2**32)
    rng.seed(seed)
    print(f"mutation fuzzing, seed {seed}, {examples} inputs from {len(corpus)} seeds")
    for _ in range(examples):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(4)
            i = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(i, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[i:i] = rng.randbytes(rng.randint(1, 8))
            elif op == 2:
                del data[i : i + rng.randint(1, 16)]
            else:
                data[i:i] = data[rng.randrange(len(data) + 1) :][: rng.randint(1, 64)]
        check(bytes([rng.randrange(256)]) + bytes(data))
    print("no crash")


def main() -> None:
    if "--hypothesis" in sys.argv or atheris is None:
        n = (
            int(sys.argv[sys.argv.index("--hypothesis") + 1])
            if "--hypothesis" in sys.argv
            else 20000
        )
        run_hypothesis(n)
        return
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
