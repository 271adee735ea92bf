"""``discovery_server --workers N`` in ``bench.discovery_v3_bench``: its processes, and
the replication between its workers (when every device is everywhere; how long one
announcement takes to reach a sibling)."""

from __future__ import annotations

import http.client
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError

_METRIC = re.compile(rb"^p2psync_discovery_(worker|devices) (\d+)$", re.M)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (a supervisor's workers)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sorted(int(c) for t in tasks for c in (t / "children").read_text().split())


def _connect(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def _metrics(conn: http.client.HTTPConnection) -> dict[str, int]:
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    return {k.decode(): int(v) for k, v in _METRIC.findall(response.read())}


def connection_per_worker(url: str, workers: int) -> dict[int, http.client.HTTPConnection]:
    """New connections until one reaches each worker (SO_REUSEPORT spreads them)."""
    found: dict[int, http.client.HTTPConnection] = {}
    for _ in range(64 * workers):
        conn = _connect(url)
        index = _metrics(conn)["worker"]
        if index in found:
            conn.close()
        else:
            found[index] = conn
        if len(found) == workers:
            return found
    raise BenchError(f"64 x {workers} connections did not reach all {workers} workers")


def wait_replicated(url: str, workers: int, devices: int, timeout: float = 300) -> float:
    """Seconds until every worker holds ``devices`` devices (polled every 10 ms)."""
    started = time.perf_counter()
    conns = connection_per_worker(url, workers)
    try:
        pending = set(conns)
        while pending:
            for index in list(pending):
                if _metrics(conns[index])["devices"] >= devices:
                    pending.discard(index)
            if pending and time.perf_counter() - started > timeout:
                raise BenchError(f"workers {sorted(pending)} lack devices after {timeout} s")
            if pending:
                time.sleep(0.01)
        return time.perf_counter() - started
    finally:
        for conn in conns.values():
            conn.close()


def replication_delays(url: str, announces: list[tuple[str, Any]], count: int) -> dict[str, float]:
    """Announce a new address for ``count`` devices on worker 0, one at a time; after each
    204, look the device up on worker 1 until the answer has it. Milliseconds (p50, max)
    from the 204 to that answer, which bounds the replication delay from above."""
    conns = connection_per_worker(url, 2)
    delays = []
    try:
        for k, (device, (method, path, _, head)) in enumerate(announces[:count]):
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if line)
            address = f"tcp://192.0.2.1:{30000 + k}"
            body = b'{"addresses":["%s"]}' % address.encode()
            conns[0].request(method, path, body, headers)
            response = conns[0].getresponse()
            response.read()
            if response.status != 204:
                raise BenchError(f"probe announce: {response.status}")
            t0 = time.perf_counter()
            while True:
                conns[1].request("GET", f"{path}?device={device}")
                answer = conns[1].getresponse().read()
                if address.encode() in answer:
                    break
                if time.perf_counter() - t0 > 10:
                    raise BenchError("a probe announcement did not reach worker 1 in 10 s")
            delays.append(1e3 * (time.perf_counter() - t0))
    finally:
        for conn in conns.values():
            conn.close()
    return {"p50_ms": statistics.median(delays), "max_ms": max(delays), "count": len(delays)}
