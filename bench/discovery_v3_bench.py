"""Discovery servers side by side: ``python -m bench.discovery_v3_bench [--quick]``.

The same client load, on Syncthing's global discovery protocol (v3), against:

- ``stdiscosrv``: Debian's Syncthing discovery server (LevelDB store);
- ``memory`` / ``redis``: our ``discovery_server`` on its memory store, and on Redis
  (a private ``redis-server`` on loopback);
- ``redis x2``: two ``discovery_server`` instances sharing that one Redis. Device *i*
  announces to instance *i mod 2* and is looked up on the other one, so every hit proves
  the instances share their devices; the figures are the two instances' sum.

Both servers run as they do behind a TLS-terminating proxy (``stdiscosrv -http``,
``discovery_server --trust-forwarded``): the device certificate comes in nginx's
``X-SSL-Cert`` header (``$ssl_client_escaped_cert``) and the source address in
``X-Forwarded-For``, so the load generator spends no CPU on TLS handshakes and both servers
parse, hash and store exactly the same requests. Everything is on 127.0.0.1. Per server:
every device announces once, then lookups of registered devices (200) and of unknown
ones (404); RSS idle and with every device registered (plus Redis's memory, or
stdiscosrv's LevelDB on disk).

Prints a markdown table, writes JSON to ``bench/results/`` and the table between the
markers in docs/discovery-server.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from bench.discovery_bench import (
    DEFAULT_CACHE,
    DEFAULT_DOC,
    RESULTS,
    Phase,
    _announce_addresses,
    _expect,
    _lat,
    _mib,
    _rate,
    load_identities,
    machine,
)
from bench.discovery_http import HeadedRequest
from bench.discovery_procs import _free_port, _stop, proc_status, start_redis, start_server
from bench.discovery_v3_load import LoadGenerators
from bench.discovery_v3_workers import children, replication_delays, wait_replicated
from bench.errors import BenchError
from p2psync.identity import DeviceID

BEGIN = "<!-- discovery-v3-bench:begin -->"
END = "<!-- discovery-v3-bench:end -->"
V3_PATH = "/v2/"  # ours serves v3 there; stdiscosrv answers on any path
FORWARDED_FOR = "198.51.100.7"  # a documentation address: stdiscosrv drops loopback ones
TARGETS = ("stdiscosrv", "memory", "memory 2w", "redis", "redis x2")
WORKERS = 2  # of the "memory 2w" target: one discovery_server, --workers 2


@dataclass(frozen=True)
class Sizes:
    devices: int
    lookups: int  # per lookup phase (hits, then misses)
    concurrency: int  # keep-alive connections, split evenly over a target's instances
    clients: int = 2  # load-generator processes, the connections split evenly over them


PRESETS = {
    "full": Sizes(devices=100_000, lookups=20_000, concurrency=16),
    "quick": Sizes(devices=3_000, lookups=3_000, concurrency=16),
    "tiny": Sizes(devices=40, lookups=120, concurrency=4, clients=1),
}


def v3_announces(triples: list[tuple[bytes, bytes, bytes]]) -> list[tuple[str, HeadedRequest]]:
    """(device ID text, v3 announce request) per identity, as a proxy would pass it on."""
    out: list[tuple[str, HeadedRequest]] = []
    for index, (cert_pem, _key, raw) in enumerate(triples):
        headers = b"X-SSL-Cert: %s\r\nX-Forwarded-For: %s\r\n" % (
            urllib.parse.quote(cert_pem.decode(), safe="").encode(),
            FORWARDED_FOR.encode(),
        )
        body = json.dumps({"addresses": _announce_addresses(index)}).encode()
        out.append((str(DeviceID(raw)), ("POST", V3_PATH, body, headers)))
    return out


# --- servers --------------------------------------------------------------------------


@dataclass
class Running:
    """One target's processes: its server instances (whose CPU is counted) and extras."""

    urls: list[str]
    servers: list[subprocess.Popen[bytes]]
    redis_proc: subprocess.Popen[bytes] | None = None
    redis_port: int = 0
    db_dir: Path | None = None

    workers: int = 1  # processes of one discovery_server --workers N

    def pids(self) -> list[int]:
        """Every process whose CPU and memory count: the servers and their workers."""
        out = []
        for proc in self.servers:
            out.append(proc.pid)
            if self.workers > 1:
                out += children(proc.pid)
        return out

    def stop(self) -> None:
        for proc in [*self.servers, *([self.redis_proc] if self.redis_proc else [])]:
            _stop(proc)


def start_stdiscosrv(workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """stdiscosrv in HTTP (behind a proxy) mode on a free loopback port; replication on
    loopback too. (process, base URL, its database directory)."""
    binary = shutil.which("stdiscosrv")
    if binary is None:
        raise BenchError("stdiscosrv is not installed (apt-get install syncthing-discosrv)")
    port, home = _free_port(), workdir / "stdiscosrv"
    home.mkdir(exist_ok=True)
    db_dir = home / "db"
    with (home / "log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, "-http", "-listen", f"127.0.0.1:{port}", "-db-dir", str(db_dir),
             "-replication-listen", "127.0.0.1:0",
             "-cert", str(home / "cert.pem"), "-key", str(home / "key.pem")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        _wait_listening(proc, port, 60, home / "log")
    except BaseException:
        _stop(proc)
        raise
    return proc, f"http://127.0.0.1:{port}", db_dir


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    """Until a TCP connect to ``port`` succeeds (retried every 20 ms), or fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    f"stdiscosrv did not listen on {port}:\n{log.read_text()[-1500:]}"
                ) from exc
            time.sleep(0.02)


def start_target(name: str, workdir: Path) -> Running:
    if name == "stdiscosrv":
        proc, url, db_dir = start_stdiscosrv(workdir)
        return Running([url], [proc], db_dir=db_dir)
    forwarded = ("--trust-forwarded",)
    if name == "memory":
        proc, url = start_server("memory", workdir, forwarded)
        return Running([url], [proc])
    if name == "memory 2w":
        proc, url = start_server("memory", workdir, (*forwarded, "--workers", str(WORKERS)))
        return Running([url], [proc], workers=WORKERS)
    redis_proc, port = start_redis(workdir)
    running = Running([], [], redis_proc, port)
    try:
        for _ in range(2 if name == "redis x2" else 1):
            proc, url = start_server(f"redis://127.0.0.1:{port}/0", workdir, forwarded)
            running.servers.append(proc)
            running.urls.append(url)
    except BaseException:
        running.stop()
        raise
    return running


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- load -----------------------------------------------------------------------------


def exercise(
    running: Running,
    announces: list[tuple[str, HeadedRequest]],
    sizes: Sizes,
    seed: int,
) -> dict[str, Any]:
    """Warm up, announce every device (device i to instance i mod n), then look up hits
    (each on an instance the device did not announce to, when there are two) and misses."""
    rng = random.Random(seed)
    count = len(running.urls)
    pids = running.pids()
    per_instance = max(1, sizes.concurrency // (count * sizes.clients))

    announce_lists: list[list[Any]] = [[] for _ in range(count)]
    for index, (_, request) in enumerate(announces):
        announce_lists[index % count].append(request)
    hit_lists: list[list[Any]] = [[] for _ in range(count)]
    miss_lists: list[list[Any]] = [[] for _ in range(count)]
    for n in range(sizes.lookups):
        index = rng.randrange(len(announces))
        hit_lists[(index + 1) % count].append(
            ("GET", f"{V3_PATH}?device={announces[index][0]}", None)
        )
        miss_lists[n % count].append(
            ("GET", f"{V3_PATH}?device={DeviceID(rng.randbytes(32))}", None)
        )
    with LoadGenerators(running.urls, sizes.clients, per_instance) as generators:
        warm = [lst[:100] for lst in miss_lists]
        generators.run(warm, pids)  # connect, import, first allocations
        idle = [proc_status(pid)["VmRSS"] for pid in pids]
        announce = generators.run(announce_lists, pids)
        _expect("announce", announce, 204)
        lag = 0.0
        if running.workers > 1:  # until every worker has every device
            lag = wait_replicated(running.urls[0], running.workers, len(announces))
        loaded = [proc_status(pid)["VmRSS"] for pid in pids]
        hit = generators.run(hit_lists, pids)
        _expect("lookup of registered devices", hit, 200)
        miss = generators.run(miss_lists, pids)
        _expect("lookup of unknown devices", miss, 404)
    return {
        "announce": announce,
        "lookup_hit": hit,
        "lookup_miss": miss,
        "instances": count,
        "workers": running.workers,
        "replicated_after_s": lag,
        "clients": sizes.clients,
        "cross_instance_hits": hit.requests if count > 1 else 0,
        "server_rss_idle": sum(idle),
        "server_rss_loaded": sum(loaded),
    }


def bench_target(
    name: str, announces: list[tuple[str, HeadedRequest]], sizes: Sizes, workdir: Path
) -> dict[str, Any]:
    running = start_target(name, workdir)
    try:
        redis_client = None
        if running.redis_proc is not None:
            redis_client = redis.Redis(host="127.0.0.1", port=running.redis_port)
            redis_idle = proc_status(running.redis_proc.pid)["VmRSS"]
        row = exercise(running, announces, sizes, 1)
        row.update(target=name, devices=len(announces), concurrency=sizes.concurrency)
        if running.workers > 1:
            row["replication_ms"] = replication_delays(running.urls[0], announces, 200)
        if running.db_dir is not None:
            row["db_bytes"] = _dir_size(running.db_dir)
        if redis_client is not None and running.redis_proc is not None:
            row["redis_rss_idle"] = redis_idle
            row["redis_rss_loaded"] = proc_status(running.redis_proc.pid)["VmRSS"]
            row["redis_used_loaded"] = int(redis_client.info("memory")["used_memory"])
            redis_client.close()
        return row
    finally:
        running.stop()


# --- report ---------------------------------------------------------------------------

_LABELS = {
    "stdiscosrv": "stdiscosrv (LevelDB)",
    "memory": "discovery_server, memory",
    "memory 2w": f"discovery_server --workers {WORKERS}, memory",
    "redis": "discovery_server, Redis",
    "redis x2": "2 × discovery_server, one Redis",
}


def _memory(r: dict[str, Any]) -> str:
    idle, loaded = r["server_rss_idle"], r["server_rss_loaded"]
    cell = f"{_mib(idle)} → {_mib(loaded)} ({(loaded - idle) / r['devices']:,.0f} B/device)"
    if "redis_rss_loaded" in r:
        cell += f"; redis-server {_mib(r['redis_rss_loaded'])}"
    if "db_bytes" in r:
        cell += f"; LevelDB on disk {_mib(r['db_bytes'])}"
    return cell


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "| Server | Devices | Announces/s | p50 / p99 ms | Lookups/s, hit | p50 / p99 ms "
        "| Lookups/s, miss | p50 / p99 ms | RSS, idle → all announced |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        a, h, m = r["announce"], r["lookup_hit"], r["lookup_miss"]
        lines.append(
            f"| {_LABELS[r['target']]} | {r['devices']:,} | {_rate(a)} | {_lat(a)} "
            f"| {_rate(h)} | {_lat(h)} | {_rate(m)} | {_lat(m)} | {_memory(r)} |"
        )
    notes = [
        "Syncthing's discovery protocol v3 over plain HTTP/1.1 on 127.0.0.1, both servers in "
        "their behind-a-proxy mode (`stdiscosrv -http`, `discovery_server --trust-forwarded`): "
        "the device certificate in `X-SSL-Cert`, the source in `X-Forwarded-For`. Each device "
        f"announced once; {meta['lookups']:,} lookups per column; {meta['concurrency']} "
        f"keep-alive connections from {meta['clients']} load-generator process(es) (a minimal "
        "HTTP/1.1 client on trio, the connections split evenly); latency = request sent → response read, queueing included.",
    ]
    for r in rows:
        if r["instances"] > 1:
            notes.append(
                f"{_LABELS[r['target']]}: device *i* announced to instance *i* mod 2, every one "
                f"of the {r['cross_instance_hits']:,} hits looked up on the other instance "
                "(all found); rates and RSS are the sum of both instances, "
                f"{r['concurrency'] // r['instances']} connections each."
            )
        if r.get("workers", 1) > 1:
            rep = r["replication_ms"]
            notes.append(
                f"{_LABELS[r['target']]}: CPU and RSS are the supervisor's and its "
                f"{r['workers']} workers' (each with a replica of every device); every worker "
                f"held every device {r['replicated_after_s']:.2f} s after the last announce "
                f"was answered; one announcement was visible on the other worker "
                f"{rep['p50_ms']:.2f} ms (median; max {rep['max_ms']:.2f}) after its 204 "
                f"({rep['count']} probes, one at a time)."
            )
        cpu = ", ".join(
            f"{r[key].server_cpu_pct:.0f}% / {r[key].client_cpu_pct:.0f}%"
            for key in ("announce", "lookup_hit", "lookup_miss")
        )
        per_request = ", ".join(
            f"{10 * r[key].server_cpu_pct / r[key].per_second:.2f}"
            for key in ("announce", "lookup_hit", "lookup_miss")
        )
        notes.append(
            f"{_LABELS[r['target']]}: CPU, % of one core, server(s) / load generator "
            f"(announce, hit, miss): {cpu}; server CPU per request: {per_request} ms."
        )
    notes.append(
        f"{meta['machine']}, load average {meta['loadavg_before']:.1f} before the run; "
        f"{meta['stdiscosrv']}; {meta['date']}; `python -m bench.discovery_v3_bench "
        f"--devices {meta['devices']} --lookups {meta['lookups']} "
        f"--concurrency {meta['concurrency']} --clients {meta['clients']}`."
    )
    return "\n".join([*lines, "", *(f"- {n}" for n in notes)]) + "\n"


def _stdiscosrv_version() -> str:
    binary = shutil.which("stdiscosrv")
    if binary is None:
        return "stdiscosrv not installed"
    out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=10)
    return (out.stdout or out.stderr).strip().split(" (")[0] or "stdiscosrv"


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.discovery_v3_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: full")
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset")
    p.add_argument("--devices", type=int)
    p.add_argument("--lookups", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument(
        "--clients", type=int, help="load-generator processes (one saturates near 15,000 req/s)"
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="for key generation")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="identity cache file")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/...)")
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    p.add_argument("--no-doc", action="store_true", help="do not touch the markdown file")
    args = p.parse_args(argv)
    preset = PRESETS["quick" if args.quick else args.preset or "full"]
    args.sizes = Sizes(
        devices=args.devices or preset.devices,
        lookups=args.lookups or preset.lookups,
        concurrency=args.concurrency or preset.concurrency,
        clients=args.clients or preset.clients,
    )
    if min(asdict(args.sizes).values()) < 1:
        p.error("--devices, --lookups and --concurrency must be positive")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or any(t not in TARGETS for t in args.targets):
        p.error(f"--targets takes some of {', '.join(TARGETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes: Sizes = args.sizes
    started = time.perf_counter()
    triples, gen_s = load_identities(sizes.devices, args.cache, args.workers)
    print(f"{len(triples):,} identities ({gen_s:.1f} s generating)", file=sys.stderr)
    announces = v3_announces(triples)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="discovery-v3-bench-") as tmp:
        for name in args.targets:
            print(f"{name}: announcing {len(announces):,} devices ...", file=sys.stderr)
            rows.append(bench_target(name, announces, sizes, Path(tmp)))
    now = datetime.datetime.now(datetime.UTC)
    meta = {
        **asdict(sizes),
        "targets": args.targets,
        "machine": machine(),
        "stdiscosrv": _stdiscosrv_version(),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_before": load,
        "total_s": time.perf_counter() - started,
    }
    table = markdown(rows, meta)
    print(table)
    out = args.out or RESULTS / f"discovery-v3-{now.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "meta": meta,
        "rows": [{k: asdict(v) if isinstance(v, Phase) else v for k, v in r.items()} for r in rows],
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    if not args.no_doc:
        update_doc_section(args.doc, table)
    print(f"wrote {out} ({meta['total_s']:.0f} s in all)", file=sys.stderr)
    return 0


def update_doc_section(doc: Path, table: str) -> None:
    """Replace the text between this bench's markers in ``doc``."""
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise BenchError(f"{doc} has no {BEGIN} ... {END} markers")
    doc.write_text(text[: start + len(BEGIN)] + "\n" + table + text[end:])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"discovery_v3_bench: {exc}", file=sys.stderr)
        sys.exit(1)
