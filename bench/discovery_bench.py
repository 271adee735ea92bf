"""Discovery-server benchmark: ``python -m bench.discovery_bench [--quick]``.

One ``python -m discovery_server`` subprocess per store (memory, then Redis with a private
``redis-server`` on loopback) and a load generator in this process (trio, N keep-alive
HTTP/1.1 connections to 127.0.0.1; ``--client httpx`` for httpx). Per store it measures:

1. announces: every device announces once (pre-signed bodies, so the generator spends its
   CPU on HTTP, not ECDSA) — throughput, p50/p99 latency;
2. lookups of registered devices (200) and of unknown ones (404) — the same figures;
3. the server's RSS idle and after registering every device (VmRSS, VmHWM from /proc);
   for Redis also redis-server's RSS and ``used_memory``.

The server runs with ``--rate``/``--burst`` raised out of reach (all load comes from one
IP) and ``--window 3600`` (the bodies are signed once, before both runs). The device
identities (P-384 key + self-signed certificate each, so every device ID is distinct and
verifiable) are generated in a process pool and cached in ``bench/results/``.

Prints a markdown table, writes JSON to ``bench/results/`` and the table between the
markers in docs/discovery-server.md's "Performance" section.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import multiprocessing
import os
import platform
import random
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import redis
import trio

from bench.errors import BenchError
from p2psync.discovery.announcement import sign_announcement
from p2psync.identity import DeviceID, Identity, generate_identity

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_CACHE = RESULTS / "discovery-identities.msgpack"
DEFAULT_DOC = ROOT / "docs" / "discovery-server.md"
BEGIN = "<!-- discovery-bench:begin -->"
END = "<!-- discovery-bench:end -->"
SERVER_URL = "http://discovery.bench.invalid"  # signed over; same for every run
TARGET_DEVICES = 100_000  # the RSS figure the docs quote
REDIS_SERVER = "/usr/bin/redis-server"
MiB = 1 << 20
RUN_DEADLINE_S = 1800  # one store's whole run
# All load comes from 127.0.0.1, so the per-source limit is raised out of reach; bodies are
# signed before both runs, hence the wide window; no expiry sweep during a run.
SERVER_FLAGS = ["--rate", "1e9", "--burst", str(10**9), "--window", "3600"]
SERVER_FLAGS += ["--ttl", "7200", "--reannounce", "3600", "--snapshot-interval", "3600"]
SERVER_FLAGS += ["--log-level", "warning"]
_CHUNK = 500  # identities per process-pool task
_CACHE_VERSION = 1


@dataclass(frozen=True)
class Sizes:
    devices: int  # registered by the announce phase (memory store)
    redis_devices: int  # the same for the Redis store (its announces are slower)
    lookups: int  # per lookup phase (hits, then misses)
    concurrency: int  # keep-alive connections


PRESETS = {
    # Redis announces are the slowest; 50,000 keep a full run near 10 minutes on 2 cores.
    "full": Sizes(devices=100_000, redis_devices=50_000, lookups=10_000, concurrency=16),
    "quick": Sizes(devices=3_000, redis_devices=3_000, lookups=3_000, concurrency=16),
    "tiny": Sizes(devices=40, redis_devices=40, lookups=120, concurrency=4),
}


@dataclass(frozen=True)
class Phase:
    """One load phase as the generator saw it, plus the server's CPU time meanwhile."""

    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    server_cpu_pct: float  # of one core
    client_cpu_pct: float


# --- identities -----------------------------------------------------------------------

Triple = tuple[bytes, bytes, bytes]  # cert PEM, key PEM, raw device ID


def _generate_chunk(count: int) -> list[Triple]:
    out = []
    for _ in range(count):
        ident = generate_identity()
        out.append((ident.cert_pem, ident.key_pem, ident.device_id.raw))
    return out


def load_identities(count: int, cache: Path | None, workers: int) -> tuple[list[Triple], float]:
    """``count`` distinct identities and the seconds spent generating missing ones.

    The cache grows as needed; it is rewritten atomically (tmp + rename)."""
    have: list[Triple] = []
    if cache is not None and cache.exists():
        data = msgpack.unpackb(cache.read_bytes())
        if data.get("version") == _CACHE_VERSION:
            have = [tuple(t) for t in data["identities"]]  # type: ignore[misc]
    missing = count - len(have)
    started = time.perf_counter()
    if missing > 0:
        chunks = [min(_CHUNK, missing - i) for i in range(0, missing, _CHUNK)]
        for batch in _pool_map(_generate_chunk, chunks, workers):
            have.extend(batch)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp")
            tmp.write_bytes(
                msgpack.packb({"version": _CACHE_VERSION, "identities": have}, use_bin_type=True)
            )
            os.replace(tmp, cache)
    if len({t[2] for t in have[:count]}) != count:
        raise BenchError(f"the identity cache {cache} holds duplicate device IDs; delete it")
    return have[:count], time.perf_counter() - started


def _announce_addresses(index: int) -> list[str]:
    """A LAN-style address unique to the device, plus 'wherever this came from'."""
    return [f"tcp://10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}:22000", "tcp://:22000"]


def _sign_chunk(args: tuple[int, list[Triple], int]) -> list[tuple[str, bytes]]:
    first, triples, timestamp = args
    out = []
    for offset, (cert_pem, key_pem, raw) in enumerate(triples):
        ident = Identity(cert_pem, key_pem, DeviceID(raw))
        body = sign_announcement(ident, _announce_addresses(first + offset), timestamp, SERVER_URL)
        out.append((str(ident.device_id), json.dumps(body).encode()))
    return out


def sign_all(triples: list[Triple], timestamp: int, workers: int) -> list[tuple[str, bytes]]:
    """(device ID text, announce body) per identity, signed for SERVER_URL at ``timestamp``."""
    tasks = [(i, triples[i : i + _CHUNK], timestamp) for i in range(0, len(triples), _CHUNK)]
    signed: list[tuple[str, bytes]] = []
    for batch in _pool_map(_sign_chunk, tasks, workers):
        signed.extend(batch)
    return signed


def _pool_map(fn: Any, tasks: list[Any], workers: int) -> list[Any]:
    if len(tasks) <= 1 or workers <= 1:
        return [fn(t) for t in tasks]
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(tasks)), context) as pool:
        return list(pool.map(fn, tasks))


# --- processes ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_line(
    proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes], timeout: float, what: str, log: Path
) -> re.Match[bytes]:
    """Read ``proc``'s stdout until ``pattern`` matches a line, within ``timeout``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = proc.stdout.fileno()
    while True:
        for line in buffer.split(b"\n"):
            match = pattern.search(line)
            if match:
                return match
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            state = "exited" if proc.poll() is not None else "gave no sign of life"
            raise BenchError(
                f"{what} {state} within {timeout:.0f} s; output:\n"
                f"{buffer.decode(errors='replace')[-500:]}\n{tail}"
            )
        buffer += chunk


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM this process (ours, by PID); SIGKILL if it has not gone after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private, non-persistent redis-server on a free loopback port; (process, port)."""
    if not Path(REDIS_SERVER).exists():
        raise BenchError(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")
    port = _free_port()
    log = workdir / "redis.log"
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--logfile", str(log)]
    proc = subprocess.Popen(
        [REDIS_SERVER, *args], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    try:
        _wait_for_redis(proc, port, log, timeout=20)
    except BaseException:
        _stop(proc)
        raise
    return proc, port


def _wait_for_redis(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    """Until a PING on ``port`` answers (retried every 20 ms), or fail at ``timeout``."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                    raise BenchError(f"redis-server did not start on port {port}:\n{tail}") from exc
                time.sleep(0.02)
    finally:
        client.close()


def start_server(
    store: str, workdir: Path, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """The discovery server on an ephemeral loopback port; (process, base URL)."""
    log = workdir / f"discovery-{len(list(workdir.glob('discovery-*.log')))}.log"
    cmd = [sys.executable, "-m", "discovery_server", "--listen", "127.0.0.1:0"]
    cmd += ["--store", store, "--url", SERVER_URL, *SERVER_FLAGS, *extra]
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
        )
    try:
        match = _wait_for_line(
            proc,
            re.compile(rb"listening on (http://127\.0\.0\.1:\d+)"),
            30,
            "the discovery server",
            log,
        )
    except BaseException:
        _stop(proc)
        raise
    return proc, match.group(1).decode()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` (threads included) in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- load -----------------------------------------------------------------------------

Request = tuple[str, str, bytes | None]  # method, path, body
# The same plus extra header lines ("Name: value\r\n" each), for Syncthing's v3 announces.
HeadedRequest = tuple[str, str, bytes | None, bytes]


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client: one request at a time, Content-Length bodies.

    httpx spends ~1 ms of CPU per request, which on a 2-core machine makes the generator,
    not the server, the bottleneck for lookups; this costs a small fraction of that. Like
    any client it opens a new connection when the server ends one (the server does after
    1,000 requests, answering the last with ``Connection: close``), and sends a request
    again on a new connection when the server closed an idle one before answering
    (the server does after ``--header-timeout`` seconds).
    """

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._host_header = f"{host}:{port}".encode()
        self._stream: trio.SocketStream | None = None
        self._buffer = b""
        self._reused = False  # the stream has answered a request: it may have gone stale

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        connection = cls(host, port)
        await connection._connect()
        return connection

    async def _connect(self) -> None:
        self._stream = await trio.open_tcp_stream(*self._address)
        self._buffer = b""
        self._reused = False

    async def request(
        self, method: str, path: str, body: bytes | None, headers: bytes = b""
    ) -> int:
        """Send one request and read its whole response; returns the status code."""
        if self._stream is None:
            await self._connect()
        try:
            return await self._request(method, path, body, headers)
        except (_StaleConnection, trio.BrokenResourceError) as exc:
            if not self._reused:
                raise BenchError("the server closed a new connection without answering") from exc
            await self.aclose()
            await self._connect()
            return await self._request(method, path, body, headers)

    async def _request(self, method: str, path: str, body: bytes | None, headers: bytes) -> int:
        assert self._stream is not None
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method.encode(),
            path.encode(),
            self._host_header,
            headers,
        )
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        await self._stream.send_all(head + b"\r\n" + (body or b""))
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            data = await self._stream.receive_some(65536)
            if not data and not self._buffer:
                raise _StaleConnection
            self._buffer += data or await self._receive_some()  # (raises: closed mid-answer)
        lines = self._buffer[:end].split(b"\r\n")
        rest = self._buffer[end + 4 :]
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise BenchError("the server sent a chunked response; RawConnection cannot")
        while len(rest) < length:
            rest += await self._receive_some()
        self._buffer = rest[length:]
        self._reused = True
        if close:
            await self._stream.aclose()
            self._stream = None
        return status

    async def _receive_some(self) -> bytes:
        assert self._stream is not None
        data = await self._stream.receive_some(65536)
        if not data:
            raise BenchError("the server closed the connection in the middle of a request")
        return data

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None


class _StaleConnection(Exception):
    """The server closed a kept-alive connection before it read our request."""


class HttpxConnection:
    """The same interface over a shared httpx.AsyncClient (``--client httpx``)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self, method: str, path: str, body: bytes | None, headers: bytes = b""
    ) -> int:
        fields = dict(line.split(": ", 1) for line in headers.decode().split("\r\n") if line)
        if body is not None:
            fields["content-type"] = "application/json"
        response = await self._client.request(method, path, content=body, headers=fields)
        return response.status_code

    async def aclose(self) -> None:
        pass


Connection = RawConnection | HttpxConnection


async def run_phase(
    connections: list[Connection], requests: list[Request], server_pid: int
) -> Phase:
    """Send ``requests``, one worker per connection, all taking from one queue of work."""
    return await run_lanes([(connections, requests)], [server_pid])


Lane = tuple[list[Connection], "list[Request] | list[HeadedRequest]"]


async def run_lanes(lanes: list[Lane], server_pids: list[int]) -> Phase:
    """Run lanes at once, each its connections taking from its own queue of requests
    (so a request goes to the server its lane's connections reach); one Phase for all,
    with the CPU time of every process in ``server_pids``."""
    total = sum(len(requests) for _, requests in lanes)
    latencies = array("d", bytes(8 * total))
    statuses = [0] * total

    async def worker(connection: Connection, todo: Any, first: int, requests: Any) -> None:
        for i in todo:  # shared per lane: next() never yields to another task
            method, path, body, *extra = requests[i]
            t0 = time.perf_counter()
            statuses[first + i] = await connection.request(method, path, body, *extra)
            latencies[first + i] = time.perf_counter() - t0

    cpu0, own0, t0 = sum(map(proc_cpu, server_pids)), _own_cpu(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        first = 0
        for connections, requests in lanes:
            todo = iter(range(len(requests)))
            for connection in connections:
                nursery.start_soon(worker, connection, todo, first, requests)
            first += len(requests)
    seconds = time.perf_counter() - t0
    server_cpu = sum(map(proc_cpu, server_pids)) - cpu0
    own_cpu = _own_cpu() - own0
    ordered = sorted(latencies)
    return Phase(
        requests=total,
        seconds=seconds,
        per_second=total / seconds,
        p50_ms=_percentile(ordered, 0.50) * 1e3,
        p99_ms=_percentile(ordered, 0.99) * 1e3,
        max_ms=ordered[-1] * 1e3,
        statuses={str(k): v for k, v in sorted(Counter(statuses).items())},
        server_cpu_pct=100 * server_cpu / seconds,
        client_cpu_pct=100 * own_cpu / seconds,
    )


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _expect(name: str, phase: Phase, status: int) -> None:
    if phase.statuses != {str(status): phase.requests}:
        raise BenchError(f"{name}: expected {phase.requests} x {status}, got {phase.statuses}")


async def exercise(
    base_url: str,
    server_pid: int,
    signed: list[tuple[str, bytes]],
    sizes: Sizes,
    client_kind: str,
    seed: int,
) -> dict[str, Any]:
    """Warm up, then announce every device, then look up hits and misses."""
    rng = random.Random(seed)
    ids = [device for device, _ in signed]
    hits: list[Request] = [
        ("GET", f"/v1/lookup?device={rng.choice(ids)}", None) for _ in range(sizes.lookups)
    ]
    misses: list[Request] = [
        ("GET", f"/v1/lookup?device={DeviceID(rng.randbytes(32))}", None)
        for _ in range(sizes.lookups)
    ]
    announces: list[Request] = [("POST", "/v1/announce", body) for _, body in signed]
    with trio.fail_after(RUN_DEADLINE_S):
        async with open_connections(base_url, sizes.concurrency, client_kind) as connections:
            await run_phase(connections, misses[:200], server_pid)  # warm-up: connect, import
            idle = proc_status(server_pid)
            announce = await run_phase(connections, announces, server_pid)
            _expect("announce", announce, 204)
            loaded = proc_status(server_pid)
            hit = await run_phase(connections, hits, server_pid)
            _expect("lookup of registered devices", hit, 200)
            miss = await run_phase(connections, misses, server_pid)
            _expect("lookup of unknown devices", miss, 404)
    return {
        "announce": announce,
        "lookup_hit": hit,
        "lookup_miss": miss,
        "server_rss_idle": idle["VmRSS"],
        "server_rss_loaded": loaded["VmRSS"],
        "server_hwm_loaded": loaded["VmHWM"],
    }


@asynccontextmanager
async def open_connections(base_url: str, count: int, kind: str) -> AsyncIterator[list[Connection]]:
    """``count`` connections of ``kind`` ('raw' or 'httpx') to ``base_url``, closed on exit."""
    host, _, port = base_url.removeprefix("http://").rpartition(":")
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        connections: list[Connection] = []
        try:
            for _ in range(count):
                connections.append(
                    HttpxConnection(client)
                    if kind == "httpx"
                    else await RawConnection.open(host, int(port))
                )
            yield connections
        finally:
            for connection in connections:
                await connection.aclose()


def bench_store(
    kind: str,
    signed: list[tuple[str, bytes]],
    sizes: Sizes,
    workdir: Path,
    client_kind: str = "raw",
) -> dict[str, Any]:
    """Run ``exercise`` against a fresh server on the ``kind`` store ('memory' or 'redis')."""
    redis_proc = None
    try:
        if kind == "redis":
            redis_proc, redis_port = start_redis(workdir)
            client = redis.Redis(host="127.0.0.1", port=redis_port)
            store = f"redis://127.0.0.1:{redis_port}/0"
            redis_idle = (
                proc_status(redis_proc.pid)["VmRSS"],
                int(client.info("memory")["used_memory"]),
            )
        else:
            store = "memory"
        server, base_url = start_server(store, workdir)
        try:
            row = trio.run(exercise, base_url, server.pid, signed, sizes, client_kind, 1)
        finally:
            _stop(server)
        row.update(store=kind, devices=len(signed), concurrency=sizes.concurrency)
        if redis_proc is not None:
            info = client.info("memory")
            row.update(
                redis_rss_idle=redis_idle[0],
                redis_rss_loaded=proc_status(redis_proc.pid)["VmRSS"],
                redis_used_idle=redis_idle[1],
                redis_used_loaded=int(info["used_memory"]),
            )
            client.close()
        return row
    finally:
        if redis_proc is not None:
            _stop(redis_proc)


# --- report ---------------------------------------------------------------------------


def _rate(phase: Phase) -> str:
    return f"{phase.per_second:,.0f}"


def _lat(phase: Phase) -> str:
    return f"{phase.p50_ms:.1f} / {phase.p99_ms:.1f}"


def _mib(n: float) -> str:
    return f"{n / MiB:.0f} MiB" if n >= 10 * MiB else f"{n / MiB:.1f} MiB"


def memory_cell(idle: int, loaded: int, devices: int) -> str:
    """'idle → loaded', plus per-device bytes and, below 100,000 devices, the extrapolation."""
    per = (loaded - idle) / devices
    cell = f"{_mib(idle)} → {_mib(loaded)} ({per:,.0f} B/device)"
    if devices < TARGET_DEVICES:
        cell += f"; ≈ {_mib(idle + per * TARGET_DEVICES)} at {TARGET_DEVICES:,} (extrapolated)"
    return cell


_CLIENTS = {"raw": "a minimal HTTP/1.1 client", "httpx": "httpx.AsyncClient"}


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "| Store | Devices | Announces/s | p50 / p99 ms | Lookups/s, hit | p50 / p99 ms "
        "| Lookups/s, miss | p50 / p99 ms | Server RSS, idle → all devices announced |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        a, h, m = r["announce"], r["lookup_hit"], r["lookup_miss"]
        rss = memory_cell(r["server_rss_idle"], r["server_rss_loaded"], r["devices"])
        lines.append(
            f"| {r['store']} | {r['devices']:,} | {_rate(a)} | {_lat(a)} | {_rate(h)} "
            f"| {_lat(h)} | {_rate(m)} | {_lat(m)} | {rss} |"
        )
    notes = [
        f"Each device announced once; {meta['lookups']:,} lookups per column; "
        f"{meta['concurrency']} keep-alive HTTP/1.1 connections on 127.0.0.1 from one "
        f"load-generator process ({_CLIENTS[meta['client']]} on trio); latency = request sent "
        "→ response read, queueing included.",
    ]
    for r in rows:
        cpu = ", ".join(
            f"{r[key].server_cpu_pct:.0f}% / {r[key].client_cpu_pct:.0f}%"
            for key in ("announce", "lookup_hit", "lookup_miss")
        )
        notes.append(
            f"CPU, % of one core, server / load generator ({r['store']}; announce, hit, "
            f"miss): {cpu}."
        )
        if "redis_rss_loaded" in r:
            rss = memory_cell(r["redis_rss_idle"], r["redis_rss_loaded"], r["devices"])
            notes.append(
                f"redis-server RSS: {rss}; its used_memory {_mib(r['redis_used_idle'])} → "
                f"{_mib(r['redis_used_loaded'])}."
            )
    notes.append(
        f"{meta['machine']}, load average {meta['loadavg_before']:.1f} before the run; "
        f"{meta['date']}; `{reproduce_command(meta)}`."
    )
    return "\n".join([*lines, "", *(f"- {n}" for n in notes)]) + "\n"


def update_doc(doc: Path, table: str) -> None:
    """Replace the text between the bench markers in ``doc`` with ``table``."""
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise BenchError(f"{doc} has no {BEGIN} ... {END} markers")
    doc.write_text(text[: start + len(BEGIN)] + "\n" + table + text[end:])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.discovery_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: full")
    p.add_argument("--stores", default="memory,redis", help="comma-separated: memory,redis")
    p.add_argument("--devices", type=int, help="override the preset's device count")
    p.add_argument("--redis-devices", type=int, help="devices for the Redis run (default: same)")
    p.add_argument("--lookups", type=int, help="override the preset's lookups per phase")
    p.add_argument("--concurrency", type=int, help="override the preset's connection count")
    p.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: a minimal HTTP/1.1 client (default) or httpx",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for key generation and signing",
    )
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="identity cache file")
    p.add_argument("--no-cache", action="store_true", help="generate identities afresh")
    p.add_argument(
        "--out", type=Path, help="JSON file (default bench/results/discovery-<stamp>.json)"
    )
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file with the markers")
    p.add_argument("--no-doc", action="store_true", help="do not touch the markdown file")
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="RECORD",
        help="run nothing: print (and write into --doc) the table of a saved JSON record",
    )
    args = p.parse_args(argv)
    if args.quick and args.preset not in (None, "quick"):
        p.error("--quick and --preset disagree")
    preset = PRESETS["quick" if args.quick else args.preset or "full"]
    args.preset = "quick" if args.quick else args.preset or "full"
    args.sizes = Sizes(
        devices=args.devices or preset.devices,
        redis_devices=args.redis_devices or args.devices or preset.redis_devices,
        lookups=args.lookups or preset.lookups,
        concurrency=args.concurrency or preset.concurrency,
    )
    if min(asdict(args.sizes).values()) < 1:
        p.error("--devices, --lookups and --concurrency must be positive")
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not args.stores or any(s not in ("memory", "redis") for s in args.stores):
        p.error("--stores takes memory and/or redis")
    return args


def reproduce_command(meta: dict[str, Any]) -> str:
    """The command line that repeats a run's sizes, whatever the presets say later."""
    words = ["python -m bench.discovery_bench", f"--devices {meta['devices']}"]
    stores = meta.get("stores", ["memory", "redis"])
    if "redis" in stores and meta["redis_devices"] != meta["devices"]:
        words.append(f"--redis-devices {meta['redis_devices']}")
    words += [f"--lookups {meta['lookups']}", f"--concurrency {meta['concurrency']}"]
    if stores != ["memory", "redis"]:
        words.append(f"--stores {','.join(stores)}")
    if meta["client"] != "raw":
        words.append(f"--client {meta['client']}")
    return " ".join(words)


def load_record(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, meta) of a JSON record written by ``main``, phases as Phase objects again."""
    record = json.loads(path.read_text())
    phases = ("announce", "lookup_hit", "lookup_miss")
    rows = [{k: Phase(**v) if k in phases else v for k, v in r.items()} for r in record["rows"]]
    return rows, record["meta"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        table = markdown(*load_record(args.from_json))
        print(table)
        if not args.no_doc:
            update_doc(args.doc, table)
        return 0
    sizes: Sizes = args.sizes
    started = time.perf_counter()
    cache = None if args.no_cache else args.cache
    needed = max(sizes.devices, sizes.redis_devices if "redis" in args.stores else 0)
    triples, gen_s = load_identities(needed, cache, args.workers)
    print(f"{len(triples):,} identities ({gen_s:.1f} s generating)", file=sys.stderr)
    t0 = time.perf_counter()
    signed = sign_all(triples, int(time.time()), args.workers)
    sign_s = time.perf_counter() - t0
    print(f"signed {len(signed):,} announcements in {sign_s:.1f} s", file=sys.stderr)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"note: load average {load:.1f} before the run; other work skews the figures",
            file=sys.stderr,
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp:
        for kind in args.stores:
            subset = signed[: sizes.redis_devices if kind == "redis" else sizes.devices]
            print(f"{kind}: announcing {len(subset):,} devices ...", file=sys.stderr)
            rows.append(bench_store(kind, subset, sizes, Path(tmp), args.client))
    now = datetime.datetime.now(datetime.UTC)
    meta = {
        "preset": args.preset,
        "devices": sizes.devices,
        "redis_devices": sizes.redis_devices,
        "lookups": sizes.lookups,
        "concurrency": sizes.concurrency,
        "client": args.client,
        "stores": args.stores,
        "machine": machine(),
        "date": now.strftime("%Y-%m-%d"),
        "loadavg_before": load,
        "keygen_s": gen_s,
        "sign_s": sign_s,
        "total_s": time.perf_counter() - started,
    }
    table = markdown(rows, meta)
    print(table)
    out = args.out or RESULTS / f"discovery-{args.preset}-{now.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "meta": meta,
        "rows": [{k: asdict(v) if isinstance(v, Phase) else v for k, v in r.items()} for r in rows],
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    if not args.no_doc:
        update_doc(args.doc, table)
    print(
        f"wrote {out}{'' if args.no_doc else ' and ' + str(args.doc)} "
        f"({meta['total_s']:.0f} s in all)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"discovery_bench: {exc}", file=sys.stderr)
        sys.exit(1)
