"""Fuzz target for a whole incoming connection, TLS handshake included (atheris).

Each input is one connection to a real ``ConnectionManager.serve_incoming`` (TLS 1.3
accept, certificate, Hello, pending record or a trusted PeerConnection) over an
in-memory stream, on trio's virtual clock so that stalls run into the real deadlines
at no cost. The first bytes choose who connects and how; the rest is what it sends,
cut into chunks at data-chosen points:

    byte 0  mode:  0 raw bytes instead of TLS    1 a stranger, TLS then the payload
                   2 the trusted device, ditto   3 a good handshake, then raw bytes
    byte 1  ALPN offered (p2psync/1, bep/1.0, none, both) and whether to close or stall
    byte 2  how many chunks the payload is cut into

Property: serve_incoming returns (never raises), closes the stream, and the daemon logs
no error (an "unexpected error" line is a contained bug, still a finding). Without
atheris, ``--mutate N`` runs N seeded mutations of fuzz/corpus_connection/ instead.

    .venv/bin/python fuzz/fuzz_connection.py fuzz/corpus_connection -max_total_time=300
    .venv/bin/python fuzz/fuzz_connection.py --mutate 2000 [--seed S]
    .venv/bin/python fuzz/fuzz_connection.py --write-corpus     # rewrites the seeds
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

try:
    import atheris
except ImportError:  # pragma: no cover - mutation fallback
    atheris = None

import trio
import trio.testing
from cryptography import x509
from OpenSSL import SSL

if atheris is not None:
    with atheris.instrument_imports():
        from p2psync.net.admission import Admission, AdmissionLimits
        from p2psync.net.manager import ConnectionManager
        from p2psync.protocol.connection import Connection
else:
    from p2psync.net.admission import Admission, AdmissionLimits
    from p2psync.net.manager import ConnectionManager
    from p2psync.protocol.connection import Connection

import trio.lowlevel

from p2psync.config import Config, DeviceConfig
from p2psync.discovery.cache import AddressCache
from p2psync.events import EventLog
from p2psync.identity import Identity, generate_identity
from p2psync.net.peer import PeerConnection
from p2psync.net.relay_service import RelayService
from p2psync.pending import PendingStore
from p2psync.protocol.messages import (
    ClusterConfig,
    ErrorCode,
    Hello,
    Index,
    Message,
    Ping,
    Request,
    Response,
)

CORPUS = Path(__file__).resolve().parent / "corpus_connection"
ALPNS: list[list[bytes]] = [[b"p2psync/1"], [b"bep/1.0"], [], [b"bep/1.0", b"p2psync/1"]]
RAW, STRANGER, TRUSTED, RAW_AFTER_TLS = range(4)
# A connection ends by itself within the manager's deadlines; this bounds a hang.
VIRTUAL_TIMEOUT = 3600.0
# Jump the virtual clock after this much real idle time, not at once: the pending
# store is written from a worker thread, which the clock cannot see.
AUTOJUMP = 0.05

SERVER = generate_identity("fuzz-server")
STRANGER_ID = generate_identity("fuzz-stranger")
TRUSTED_ID = generate_identity("fuzz-trusted")
HOME = Path(tempfile.mkdtemp(prefix="p2psync-fuzz-connection-"))  # pending.json
atexit.register(shutil.rmtree, HOME, ignore_errors=True)


class _Errors(logging.Handler):
    """Collects p2psync's ERROR records: each one is a finding."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ERRORS = _Errors()


class _NullModel:
    """Stands in for the sync model: reads everything, serves nothing."""

    async def handle_message(self, peer: PeerConnection, message: Message) -> None:
        return None

    async def handle_requests(self, peer: PeerConnection, requests: object) -> list[Response]:
        return [Response(id=r.id, code=ErrorCode.NO_SUCH_FILE) for r in requests]  # type: ignore[attr-defined]


async def _serve_peer(peer: PeerConnection) -> None:
    await peer.send(ClusterConfig())
    await peer.run(_NullModel())


def _config() -> Config:
    return Config(name="fuzz", listen=()).with_device(
        DeviceConfig(id=str(TRUSTED_ID.device_id), name="trusted")
    )


def _manager() -> ConnectionManager:
    config = _config()
    manager = ConnectionManager(
        identity=SERVER,
        get_config=lambda: config,
        cache=AddressCache(),
        pending=PendingStore(HOME),
        events=EventLog(),
        serve_peer=_serve_peer,
        relays=RelayService(SERVER, lambda: config.relays),
    )
    return manager


def _client_context(identity: Identity, alpn: list[bytes]) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate(x509.load_pem_x509_certificate(identity.cert_pem))
    ctx.use_privatekey(identity.private_key())
    ctx.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    if alpn:
        ctx.set_alpn_protos(alpn)
    return ctx


class _Client:
    """A TLS client engine on memory BIOs; the harness decides what reaches the wire."""

    def __init__(self, stream: trio.abc.Stream, context: SSL.Context) -> None:
        self.stream = stream
        self.conn = SSL.Connection(context, None)
        self.conn.set_connect_state()

    def _out(self) -> bytes:
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                return out

    async def handshake(self) -> bool:
        """True once the client side of the handshake completed."""
        while True:
            try:
                self.conn.do_handshake()
                done = True
            except SSL.WantReadError:
                done = False
            except SSL.Error:
                return False
            out = self._out()
            if out:
                await self.stream.send_all(out)
            if done:
                return True
            data = await self.stream.receive_some(65536)
            if not data:
                return False
            self.conn.bio_write(data)

    def encrypt(self, data: bytes) -> bytes:
        if data:
            self.conn.send(data)
        return self._out()


def _cut(payload: bytes, chunks: int, rng: random.Random) -> list[bytes]:
    if not payload:
        return []
    points = sorted(rng.randrange(len(payload) + 1) for _ in range(max(0, chunks - 1)))
    bounds = [0, *points, len(payload)]
    return [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


async def _drain(stream: trio.abc.Stream) -> None:
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _one_connection(data: bytes) -> None:
    mode = data[0] % 4
    alpn = ALPNS[data[1] % len(ALPNS)]
    close_at_end = not data[1] & 0x80
    chunks = 1 + data[2] % 8
    payload = data[3:]
    rng = random.Random(data)
    manager = _manager()
    admission = Admission(AdmissionLimits())
    client_side, server_side = trio.testing.memory_stream_pair()
    finished = trio.Event()

    async def server() -> None:
        ticket = admission.try_admit("192.0.2.1")
        assert ticket is not None
        await manager.serve_incoming(server_side, "tcp://192.0.2.1:1", ticket)
        finished.set()

    async def client() -> None:
        try:
            if mode == RAW:
                wire = _cut(payload, chunks, rng)
            else:
                identity = TRUSTED_ID if mode == TRUSTED else STRANGER_ID
                tls = _Client(client_side, _client_context(identity, alpn))
                if not await tls.handshake():
                    return
                if mode == RAW_AFTER_TLS:
                    wire = _cut(payload, chunks, rng)
                else:
                    wire = [tls.encrypt(p) for p in _cut(payload, chunks, rng)]
            for part in wire:
                await client_side.send_all(part)
                await trio.lowlevel.checkpoint()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if close_at_end:
            await client_side.send_eof()  # the server still gets to answer
        await _drain(client_side)  # after a stall, the server's deadline must end it

    with trio.fail_after(VIRTUAL_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            nursery.start_soon(client)
            await finished.wait()
            nursery.cancel_scope.cancel()
    assert admission.statistics().in_flight == 0, "the connection kept its place"


def check(data: bytes) -> None:
    if len(data) < 3:
        return
    ERRORS.records.clear()
    logger = logging.getLogger("p2psync")
    logger.addHandler(ERRORS)
    try:
        trio.run(_one_connection, data, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP))
    finally:
        logger.removeHandler(ERRORS)
    if ERRORS.records:
        raise AssertionError(
            "the daemon logged an error: " + "; ".join(r.getMessage() for r in ERRORS.records)
        )


# ---- seeds ------------------------------------------------------------------------------


def _frames(*messages: Message) -> bytes:
    conn = Connection(
        Hello(device_name="seed", client_name="p2psync", client_version="seed", timestamp=1)
    )
    return conn.start() + b"".join(conn.send(m) for m in messages)


def seeds() -> dict[str, bytes]:
    hello = _frames()
    session = _frames(
        ClusterConfig(),
        Index(folder="default", files=()),
        Request(id=1, folder="default", name="a", offset=0, size=10, hash=b"\x01" * 32),
        Ping(),
    )
    out = {
        "raw-garbage": bytes([RAW, 0, 3]) + os.urandom(64),
        "raw-http": bytes([RAW, 0, 0]) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "stranger-hello": bytes([STRANGER, 0, 0]) + hello,
        "stranger-hello-split": bytes([STRANGER, 0, 5]) + hello,
        "stranger-bep": bytes([STRANGER, 1, 0]) + hello,
        "stranger-no-alpn": bytes([STRANGER, 2, 0]) + hello,
        "stranger-stall": bytes([STRANGER, 0x80, 0]) + hello[:7],
        "trusted-session": bytes([TRUSTED, 0, 0]) + session,
        "trusted-session-split": bytes([TRUSTED, 3, 7]) + session,
        "trusted-stall": bytes([TRUSTED, 0x80, 2]) + session,
        "raw-after-tls": bytes([RAW_AFTER_TLS, 0, 1]) + os.urandom(64),
    }
    return out


def write_corpus() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.iterdir():
        old.unlink()
    for name, data in seeds().items():
        (CORPUS / name).write_bytes(data)
    print(f"wrote {len(list(CORPUS.iterdir()))} seeds to {CORPUS}")


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        i = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(i, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del out[i : i + rng.randint(1, 16)]
        elif op == 3:
            out[i:i] = out[rng.randrange(len(out) + 1) :][: rng.randint(1, 64)]
        elif out:
            out[0] = rng.randrange(256)  # another mode / ALPN / cut
    return bytes(out)


def run_mutations(examples: int, seed: int, on_input: Callable[[bytes], None] = check) -> None:
    corpus = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
    rng = random.Random(seed)
    for data in corpus:
        on_input(data)
    for _ in range(examples):
        on_input(mutate(rng.choice(corpus), rng))


def main() -> None:
    logging.getLogger("p2psync").setLevel(logging.ERROR)  # one line per finding, no noise
    if "--write-corpus" in sys.argv:
        write_corpus()
        return
    if "--mutate" in sys.argv or atheris is None:
        n = int(sys.argv[sys.argv.index("--mutate") + 1]) if "--mutate" in sys.argv else 2000
        seed = (
            int(sys.argv[sys.argv.index("--seed") + 1])
            if "--seed" in sys.argv
            else random.randrange(2**32)
        )
        print(f"connection fuzzing, seed {seed}, {n} mutations of {CORPUS}")
        run_mutations(n, seed)
        print("no crash")
        return
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
