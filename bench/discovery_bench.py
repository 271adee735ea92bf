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
import resource
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import redis
import trio

from bench.discovery_http import Connection, HeadedRequest, HttpxConnection, RawConnection, Request
from bench.discovery_procs import (
    ROOT,
    SERVER_URL,
    _stop,
    proc_cpu,
    proc_status,
    start_redis,
    start_server,
)
from bench.errors import BenchError
from p2psync.discovery.announcement import sign_announcement
from p2psync.identity import DeviceID, Identity, generate_identity

RESULTS = ROOT / "bench" / "results"
DEFAULT_CACHE = RESULTS / "discovery-identities.msgpack"
DEFAULT_DOC = ROOT / "docs" / "discovery-server.md"
BEGIN = "<!-- discovery-bench:begin -->"
END = "<!-- discovery-bench:end -->"
TARGET_DEVICES = 100_000  # the RSS figure the docs quote
MiB = 1 << 20
RUN_DEADLINE_S = 1800  # one store's whole run
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


async def run_phase(
    connections: list[Connection], requests: list[Request], server_pid: int
) -> Phase:
    """Send ``requests``, one worker per connection, all taking from one queue of work."""
    return await run_lanes([(connections, requests)], [server_pid])


Lane = tuple[list[Connection], "list[Request] | list[HeadedRequest]"]


async def drive_lanes(
    lanes: Iterable[tuple[Sequence[Any], Sequence[Any]]],
) -> tuple[array, list[int]]:
    """Send every lane's requests, one worker per connection of the lane, the workers
    taking from the lane's one queue; (latency in s, status) per request, in order."""
    lanes = list(lanes)
    total = sum(len(requests) for _, requests in lanes)
    latencies = array("d", bytes(8 * total))
    statuses = [0] * total

    async def worker(connection: Any, todo: Any, first: int, requests: Any) -> None:
        for i in todo:  # shared per lane: next() never yields to another task
            method, path, body, *extra = requests[i]
            t0 = time.perf_counter()
            statuses[first + i] = await connection.request(method, path, body, *extra)
            latencies[first + i] = time.perf_counter() - t0

    async with trio.open_nursery() as nursery:
        first = 0
        for connections, requests in lanes:
            todo = iter(range(len(requests)))
            for connection in connections:
                nursery.start_soon(worker, connection, todo, first, requests)
            first += len(requests)
    return latencies, statuses


async def run_lanes(lanes: list[Lane], server_pids: list[int]) -> Phase:
    """Run lanes at once, each its connections taking from its own queue of requests
    (so a request goes to the server its lane's connections reach); one Phase for all,
    with the CPU time of every process in ``server_pids``."""
    total = sum(len(requests) for _, requests in lanes)
    cpu0, own0, t0 = sum(map(proc_cpu, server_pids)), _own_cpu(), time.perf_counter()
    latencies, statuses = await drive_lanes(lanes)
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
