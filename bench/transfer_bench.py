"""Block transfer benchmark (issue 4): ``python -m bench.transfer_bench [--quick]``.

Raw block throughput between two processes on loopback over p2psync's real stack:
TLS 1.3 (``net.tls``, pyOpenSSL on trio) → ``RateLimitedStream`` (unlimited buckets, as
the daemon wraps every connection) → sans-IO ``protocol.connection.Connection`` →
``net.peer.PeerConnection``. The server is a separate process (its own event loop and
GIL, ``--serve protocol``) whose PeerHandler answers every Request with ``size`` bytes
sliced from an in-memory buffer (no disk, no hashing); the client issues N Requests with
K in flight and times them. Both sides exchange Hello, then ClusterConfig, as the
connection manager does.

The limit is the same bytes over a plain ``TLSStream`` pair between two processes
(``--serve raw``: send_all of request-sized chunks, receive_some of the size the peer
adapter reads), no protocol. CPU is utime+stime of each process in the timed window
(getrusage for the client, /proc/PID/stat for the server), as milliseconds per MB.

Prints a markdown table, writes JSON to ``bench/results/`` and the table between the
``transfer`` markers of docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import re
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from bench.errors import BenchError
from bench.procstats import cpu_seconds, machine
from p2psync import CLIENT_NAME, __version__
from p2psync.identity import DeviceID, generate_identity
from p2psync.net.peer import RECEIVE_CHUNK, PeerConnection
from p2psync.net.ratelimit import RateLimitedStream, TokenBucket
from p2psync.net.tls import TLSStream, make_tls_context, tls_accept, tls_connect
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import ClusterConfig, Hello, Message, Request, Response

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- transfer:begin -->"
END = "<!-- transfer:end -->"

KiB = 1 << 10
MiB = 1 << 20
REQUEST_SIZES = (128 * KiB, MiB)
IN_FLIGHT = (4, 16, 64)
FOLDER = "bench"
NAME = "blob.bin"
BLOCK_HASH = bytes(32)  # the server ignores it
BUFFER_SIZE = 16 * MiB
SEED = 4
_RAW_HEADER = struct.Struct("!QI")  # total bytes, chunk size
TIMEOUT = 600.0


def make_buffer() -> bytes:
    """The bytes both processes agree on (deterministic), so the client can check them."""
    return random.Random(SEED).randbytes(BUFFER_SIZE)


def block_at(buffer: bytes, offset: int, size: int) -> bytes:
    """The ``size`` bytes the server answers for ``offset`` (wrapping in the buffer)."""
    start = offset % (len(buffer) - size + 1)
    return buffer[start : start + size]


# ---- the protocol stack, both sides --------------------------------------------------


async def _exchange_hellos(tls: TLSStream, name: str) -> Connection:
    protocol = Connection(
        Hello(
            device_name=name,
            client_name=CLIENT_NAME,
            client_version=__version__,
            timestamp=time.time_ns(),
        )
    )
    await tls.send_all(protocol.start())
    while True:
        event = protocol.next_event()
        if isinstance(event, Hello):
            return protocol
        if event is not NEED_DATA:
            raise BenchError(f"peer sent {event!r} instead of its Hello")
        data = await tls.receive_some(64 * KiB)
        if not data:
            raise BenchError("peer closed before its Hello")
        protocol.receive_data(data)


async def open_peer(tls: TLSStream, name: str) -> PeerConnection:
    """What the connection manager does after the TLS handshake (Hellos, rate-limited
    stream with unlimited buckets, PeerConnection), minus trust checks and config."""
    protocol = await _exchange_hellos(tls, name)
    stream = RateLimitedStream(
        tls, send_buckets=[TokenBucket.unlimited()], receive_buckets=[TokenBucket.unlimited()]
    )
    device = DeviceID.from_cert_der(tls.peer_certificate_der())
    return PeerConnection(stream, protocol, device, "tcp://127.0.0.1")


class BlobHandler:
    """PeerHandler: notes the peer's ClusterConfig and serves Requests from memory."""

    def __init__(self, buffer: bytes) -> None:
        self.buffer = buffer
        self.cluster_config = trio.Event()

    async def handle_message(self, peer: PeerConnection, message: Message) -> None:
        if isinstance(message, ClusterConfig):
            self.cluster_config.set()

    async def handle_requests(
        self, peer: PeerConnection, requests: Sequence[Request]
    ) -> list[Response]:
        return [Response(id=r.id, data=block_at(self.buffer, r.offset, r.size)) for r in requests]


# ---- server process ---------------------------------------------------------------------


async def _serve_protocol(tls: TLSStream, buffer: bytes) -> None:
    peer = await open_peer(tls, "bench-server")
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run, BlobHandler(buffer))
        await peer.send(ClusterConfig())
        await peer.wait_closed()


async def _serve_raw(tls: TLSStream, buffer: bytes) -> None:
    header = b""
    while len(header) < _RAW_HEADER.size:
        data = await tls.receive_some(_RAW_HEADER.size - len(header))
        if not data:
            return
        header += data
    total, chunk = _RAW_HEADER.unpack(header)
    for i in range(total // chunk):
        await tls.send_all(block_at(buffer, i * chunk, chunk))
    while await tls.receive_some(64 * KiB):  # until the client closes
        pass


async def _serve_connection(mode: str, ctx: Any, buffer: bytes, tcp: trio.SocketStream) -> None:
    try:
        tls = await tls_accept(tcp, ctx)
        try:
            await (_serve_raw if mode == "raw" else _serve_protocol)(tls, buffer)
        finally:
            await trio.aclose_forcefully(tls)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
        print(f"server: connection ended: {exc!r}", file=sys.stderr, flush=True)


async def serve(mode: str) -> None:
    """Listen on 127.0.0.1, print ``PORT n``, serve until stdin is closed."""
    buffer = make_buffer()
    ctx = make_tls_context(generate_identity())
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(f"PORT {listeners[0].socket.getsockname()[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(trio.serve_listeners, partial(_serve_connection, mode, ctx, buffer), listeners)
        )
        # The parent closing our stdin (or dying) ends the server.
        await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


class Server:
    """A ``--serve MODE`` subprocess; stopped by closing its stdin, killed by PID if stuck."""

    def __init__(self, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.transfer_bench", "--serve", mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise BenchError(f"{mode} server did not start (said {line!r})")
        self.port = int(line.split()[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- client -----------------------------------------------------------------------------


@dataclass
class Measurement:
    mode: str  # "protocol" or "raw"
    request_size: int
    in_flight: int  # 0 for raw
    bytes: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def mbps(self) -> float:
        return self.bytes / self.seconds / 1e6


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _check(buffer: bytes, offset: int, size: int, data: bytes) -> None:
    if len(data) != size:
        raise BenchError(f"block at {offset}: {len(data)} bytes instead of {size}")
    if data != block_at(buffer, offset, size):
        raise BenchError(f"block at {offset}: wrong content")


async def fetch_blocks(
    server: Server, ctx: Any, buffer: bytes, size: int, in_flight: int, total: int
) -> Measurement:
    """One connection; ``total // size`` Requests with ``in_flight`` outstanding."""
    count = max(1, total // size)
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    tls = await tls_connect(tcp, ctx)
    peer = await open_peer(tls, "bench-client")
    handler = BlobHandler(buffer)
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run, handler)
        await peer.send(ClusterConfig())
        with trio.fail_after(30):
            await handler.cluster_config.wait()
        indexes = iter(range(count))
        check = {0, count - 1}  # content checks off the hot path: first and last block

        async def worker() -> None:
            for i in indexes:  # shared iterator: each worker takes the next block
                data = await peer.request(FOLDER, NAME, i * size, size, BLOCK_HASH)
                if i in check:
                    _check(buffer, i * size, size, data)
                elif len(data) != size:
                    raise BenchError(f"block {i}: {len(data)} bytes instead of {size}")

        server_cpu0, cpu0, t0 = cpu_seconds(server.pid), _own_cpu(), time.perf_counter()
        async with trio.open_nursery() as workers:
            for _ in range(in_flight):
                workers.start_soon(worker)
        seconds = time.perf_counter() - t0
        cpu, server_cpu = _own_cpu() - cpu0, cpu_seconds(server.pid) - server_cpu0
        await peer.close("benchmark done")
        nursery.cancel_scope.cancel()
    return Measurement("protocol", size, in_flight, count * size, seconds, cpu, server_cpu)


async def copy_plain(server: Server, ctx: Any, buffer: bytes, size: int, total: int) -> Measurement:
    """The limit: ``total`` bytes sent in ``size`` writes over a bare TLSStream."""
    total = max(1, total // size) * size
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    tls = await tls_connect(tcp, ctx)
    try:
        server_cpu0, cpu0, t0 = cpu_seconds(server.pid), _own_cpu(), time.perf_counter()
        await tls.send_all(_RAW_HEADER.pack(total, size))
        received = 0
        first = b""
        while received < total:
            data = await tls.receive_some(RECEIVE_CHUNK)
            if not data:
                raise BenchError(f"server closed after {received} of {total} bytes")
            if len(first) < size:
                first += data[: size - len(first)]
            received += len(data)
        seconds = time.perf_counter() - t0
        cpu, server_cpu = _own_cpu() - cpu0, cpu_seconds(server.pid) - server_cpu0
        await tls.aclose()  # with close_notify: the server sees a clean end
    finally:
        await trio.aclose_forcefully(tls)
    _check(buffer, 0, size, first)
    return Measurement("raw", size, 0, total, seconds, cpu, server_cpu)


def run_all(sizes: list[int], in_flight: list[int], total: int, repeat: int) -> list[Measurement]:
    """Per request size: the plain-TLS limit, then each in-flight depth; the median of
    ``repeat`` runs by time."""
    buffer = make_buffer()
    ctx = make_tls_context(generate_identity())
    out: list[Measurement] = []
    with Server("raw") as raw, Server("protocol") as proto:

        async def main() -> None:
            with trio.fail_after(TIMEOUT):
                for size in sizes:
                    runs = [await copy_plain(raw, ctx, buffer, size, total) for _ in range(repeat)]
                    out.append(_median(runs))
                    for k in in_flight:
                        runs = [
                            await fetch_blocks(proto, ctx, buffer, size, k, total)
                            for _ in range(repeat)
                        ]
                        out.append(_median(runs))
                        print(f"  {_label(out[-1])}: {out[-1].mbps:.0f} MB/s", file=sys.stderr)

        trio.run(main)
    return out


def _median(runs: list[Measurement]) -> Measurement:
    runs = sorted(runs, key=lambda m: m.seconds)
    return runs[len(runs) // 2]


def _label(m: Measurement) -> str:
    return f"{_size(m.request_size)} × {m.in_flight}" if m.mode == "protocol" else "plain TLS"


# ---- report -----------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n // KiB} KiB"


def _ms_per_mb(cpu_s: float, nbytes: int) -> str:
    return f"{cpu_s * 1000 / (nbytes / 1e6):.2f}"


def rows(measurements: list[Measurement]) -> list[dict[str, Any]]:
    limits = {m.request_size: m.mbps for m in measurements if m.mode == "raw"}
    out = []
    for m in measurements:
        row = asdict(m)
        row["mbps"] = round(m.mbps, 1)
        limit = limits.get(m.request_size)
        row["pct_of_limit"] = round(100 * m.mbps / limit, 1) if limit else None
        out.append(row)
    return out


def markdown(table_rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        f"Run {meta['date']} · `{meta['command']}` · {_size(meta['bytes_per_row'])} per row, "
        f"median of {meta['repeat']} run(s).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}. "
        f"Python {m['python']}, p2psync {m['p2psync']}.",
        "",
        "| request | in flight | stack | seconds | MB/s | % of plain TLS | "
        "CPU ms/MB client | CPU ms/MB server | CPU ms/MB total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table_rows:
        raw = r["mode"] == "raw"
        lines.append(
            "| {req} | {k} | {stack} | {s:.2f} | {mbps} | {pct} | {c} | {sv} | {t} |".format(
                req=_size(r["request_size"]),
                k="—" if raw else r["in_flight"],
                stack="plain TLSStream copy (limit)" if raw else "TLS + protocol + PeerConnection",
                s=r["seconds"],
                mbps=f"**{r['mbps']:.0f}**",
                pct="100%" if raw else f"{r['pct_of_limit']:.0f}%",
                c=_ms_per_mb(r["client_cpu_s"], r["bytes"]),
                sv=_ms_per_mb(r["server_cpu_s"], r["bytes"]),
                t=_ms_per_mb(r["client_cpu_s"] + r["server_cpu_s"], r["bytes"]),
            )
        )
    lines += [
        "",
        "Client and server are separate processes on 127.0.0.1, one TLS 1.3 connection per row; "
        "the server answers from memory (no disk, no hashing). MB = 10^6 bytes. CPU: "
        "utime+stime of each process in the timed window. Plain TLS: the server writes "
        f"request-sized chunks, the client reads {RECEIVE_CHUNK // KiB} KiB at a time "
        "(as PeerConnection does).",
    ]
    return "\n".join(lines) + "\n"


def replace_marked(doc: Path, begin: str, end: str, table: str) -> None:
    """Replace the text between ``begin`` and ``end`` in ``doc`` with ``table``."""
    text = doc.read_text()
    pattern = re.escape(begin) + ".*?" + re.escape(end)
    if not re.search(pattern, text, flags=re.S):
        raise BenchError(f"{doc} has no {begin} ... {end} markers")
    doc.write_text(re.sub(pattern, lambda _: f"{begin}\n{table}{end}", text, count=1, flags=re.S))


# ---- command line -----------------------------------------------------------------------


def _parse_size(text: str) -> int:
    text = text.strip().lower()
    for suffix, mult in (("m", MiB), ("mib", MiB), ("k", KiB), ("kib", KiB)):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(text[: -len(suffix)]) * mult
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.transfer_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="64 MiB per row (full: 512 MiB)")
    p.add_argument("--mib-per-row", type=int, help="bytes moved per row, in MiB")
    p.add_argument("--sizes", default="128k,1m", help="request sizes (default 128k,1m)")
    p.add_argument("--in-flight", default="4,16,64", help="requests in flight (default 4,16,64)")
    p.add_argument("--repeat", type=int, default=1, help="runs per row; the median is shown")
    p.add_argument("--out", type=Path, help="JSON record (default bench/results/transfer-*.json)")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file with the transfer markers")
    p.add_argument("--no-doc", action="store_true", help="do not touch the markdown file")
    p.add_argument("--serve", choices=["protocol", "raw"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        trio.run(serve, args.serve)
        return 0
    total = (args.mib_per_row or (64 if args.quick else 512)) * MiB
    sizes = [_parse_size(s) for s in args.sizes.split(",")]
    in_flight = [int(k) for k in args.in_flight.split(",")]
    measurements = run_all(sizes, in_flight, total, max(1, args.repeat))
    now = datetime.datetime.now(datetime.UTC)
    command = "python -m bench.transfer_bench" + (" --quick" if args.quick else "")
    for flag, value, default in (
        ("--mib-per-row", args.mib_per_row, None),
        ("--sizes", args.sizes, "128k,1m"),
        ("--in-flight", args.in_flight, "4,16,64"),
        ("--repeat", args.repeat, 1),
    ):
        if value not in (None, default):
            command += f" {flag} {value}"
    meta = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "bytes_per_row": total,
        "repeat": max(1, args.repeat),
        "machine": machine(),
    }
    table_rows = rows(measurements)
    table = markdown(table_rows, meta)
    print(table)
    out = (
        args.out
        or RESULTS / f"transfer-{'quick' if args.quick else 'full'}-{now:%Y%m%d-%H%M%S}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": table_rows}, indent=2) + "\n")
    if not args.no_doc:
        replace_marked(args.doc, BEGIN, END, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
