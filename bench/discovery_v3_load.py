"""Several load-generator processes for ``bench.discovery_v3_bench``.

One trio process running a minimal HTTP/1.1 client spends about 30 µs of CPU per
request, so near 15,000 requests/s it saturates its core, which is where stdiscosrv's
lookups are: one such generator measures itself, not stdiscosrv. ``LoadGenerators``
starts ``clients`` processes, each with its share of the keep-alive connections and of
every phase's requests; a phase starts in all of them at once and ends when the last
one is done. The parent only coordinates (it sends no requests), so its CPU is not
counted; the children's is summed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection as Pipe
from typing import Any

import trio

from bench.discovery_bench import Phase, _own_cpu, _percentile, drive_lanes
from bench.discovery_http import RawConnection
from bench.discovery_procs import proc_cpu
from bench.errors import BenchError

# A lane's requests: one list per server instance (a request goes to that instance).
Lanes = list[list[Any]]

_START_TIMEOUT_S = 120
_PHASE_TIMEOUT_S = 1800


def _child(pipe: Pipe, urls: list[str], per_instance: int) -> None:
    """Child process entry point: open connections, then run phases as told."""
    try:
        trio.run(_serve_parent, pipe, urls, per_instance)
    except BaseException as exc:  # report, then let the process end with the error
        with contextlib.suppress(OSError):
            pipe.send(("error", repr(exc)))
        raise


async def _serve_parent(pipe: Pipe, urls: list[str], per_instance: int) -> None:
    pool: list[list[RawConnection]] = []
    try:
        for url in urls:
            host, _, port = url.removeprefix("http://").rpartition(":")
            pool.append([await RawConnection.open(host, int(port)) for _ in range(per_instance)])
        pipe.send(("ready", None))
        lanes: Lanes = []
        while True:
            # The parent's messages come at phase boundaries only; a thread waits for them.
            command, payload = await trio.to_thread.run_sync(pipe.recv)
            if command == "load":
                lanes = payload
                pipe.send(("loaded", None))
            elif command == "go":
                pipe.send(("done", await _drive(pool, lanes)))
            else:
                return
    finally:
        for connections in pool:
            for connection in connections:
                await connection.aclose()


async def _drive(pool: list[list[RawConnection]], lanes: Lanes) -> tuple[array, list[int], float]:
    """Every lane's requests over its instance's connections; (latencies, statuses, CPU s)."""
    cpu0 = _own_cpu()
    latencies, statuses = await drive_lanes(zip(pool, lanes, strict=True))
    return latencies, statuses, _own_cpu() - cpu0


class LoadGenerators:
    """``clients`` generator processes, each with ``per_instance`` connections to every
    URL in ``urls``. Use as a context manager; ``run(lanes, pids)`` runs one phase."""

    def __init__(self, urls: list[str], clients: int, per_instance: int) -> None:
        self._urls, self._clients, self._per_instance = urls, clients, per_instance
        self._procs: list[Any] = []
        self._pipes: list[Pipe] = []

    def __enter__(self) -> LoadGenerators:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        try:
            for _ in range(self._clients):
                ours, theirs = context.Pipe()
                proc = context.Process(
                    target=_child, args=(theirs, self._urls, self._per_instance), daemon=True
                )
                proc.start()
                theirs.close()
                self._procs.append(proc)
                self._pipes.append(ours)
            self._collect("ready", _START_TIMEOUT_S)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", None))
        for proc in self._procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self._pipes:
            pipe.close()

    def _collect(self, expected: str, timeout: float) -> list[Any]:
        out = []
        deadline = time.monotonic() + timeout
        for pipe in self._pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"a load generator did not answer '{expected}' in {timeout} s")
            try:
                kind, payload = pipe.recv()
            except EOFError:
                raise BenchError(f"a load generator exited instead of '{expected}'") from None
            if kind != expected:
                raise BenchError(f"a load generator failed: {payload}")
            out.append(payload)
        return out

    def run(self, lanes: Lanes, server_pids: list[int]) -> Phase:
        """One phase: lane k's requests to instance k, dealt round-robin over the
        generators; the server CPU of ``server_pids`` and the generators' CPU meanwhile."""
        n = self._clients
        for c, pipe in enumerate(self._pipes):
            pipe.send(("load", [requests[c::n] for requests in lanes]))
        self._collect("loaded", _START_TIMEOUT_S)
        cpu0, t0 = sum(map(proc_cpu, server_pids)), time.perf_counter()
        for pipe in self._pipes:
            pipe.send(("go", None))
        results = self._collect("done", _PHASE_TIMEOUT_S)
        seconds = time.perf_counter() - t0
        server_cpu = sum(map(proc_cpu, server_pids)) - cpu0
        latencies = sorted(x for lat, _, _ in results for x in lat)
        statuses = Counter(s for _, st, _ in results for s in st)
        client_cpu = sum(cpu for _, _, cpu in results)
        return Phase(
            requests=len(latencies),
            seconds=seconds,
            per_second=len(latencies) / seconds,
            p50_ms=_percentile(latencies, 0.50) * 1e3,
            p99_ms=_percentile(latencies, 0.99) * 1e3,
            max_ms=latencies[-1] * 1e3,
            statuses={str(k): v for k, v in sorted(statuses.items())},
            server_cpu_pct=100 * server_cpu / seconds,
            client_cpu_pct=100 * client_cpu / seconds,
        )
