"""``p2psync-discovery --workers N`` as real processes over real sockets: devices announced
to one worker are found on another (memory replicas, or one Redis), and the supervisor
stops every worker on SIGTERM or when one of them dies."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psync.discovery.announcement import sign_announcement
from p2psync.identity import Identity

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


class Server:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.stderr_path = tmp_path / "stderr.log"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "discovery_server", "--listen", "127.0.0.1:0",
                 "--workers", str(WORKERS), *args],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # EOF if the server dies; bounded by pytest's timeout
        if "listening on" not in line:
            self.stop(signal.SIGKILL)
            pytest.fail(f"server did not start: {line!r}\n{self.stderr_path.read_text()}")
        self.url = line.split("listening on ", 1)[1].split()[0]

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def workers(self) -> list[int]:
        """The worker processes' PIDs (the supervisor's children)."""
        tasks = Path(f"/proc/{self.proc.pid}/task").iterdir()
        return sorted(int(c) for t in tasks for c in (t / "children").read_text().split())

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def server_args() -> tuple[str, ...]:
    return ()


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def metric(conn: http.client.HTTPConnection, name: str) -> int:
    status, body = get(conn, "/metrics")
    assert status == 200
    match = re.search(rf"^p2psync_discovery_{name} (\d+)$", body.decode(), re.M)
    assert match is not None, name
    return int(match.group(1))


def connection_per_worker(url: str) -> Iterator[dict[int, http.client.HTTPConnection]]:
    """Keep-alive connections until one reaches each worker (the kernel spreads them)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    found: dict[int, http.client.HTTPConnection] = {}
    spare = []
    try:
        for _ in range(64):  # all 64 on one of two workers: odds 2**-63
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            index = metric(conn, "worker")
            if index in found:
                spare.append(conn)
            else:
                found[index] = conn
            if len(found) == WORKERS:
                break
        assert sorted(found) == list(range(WORKERS))
        yield found
    finally:
        for conn in [*found.values(), *spare]:
            conn.close()


def announce(conn: http.client.HTTPConnection, identity: Identity, url: str) -> None:
    body = sign_announcement(identity, ["tcp://192.0.2.1:22000"], int(time.time()), url)
    conn.request("POST", "/v1/announce", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    assert response.status == 204


def test_a_device_announced_to_one_worker_is_found_on_the_other(
    tmp_path: Path, identity: Identity
) -> None:
    server = Server(tmp_path)
    try:
        for conns in connection_per_worker(server.url):
            lookup = f"/v1/lookup?device={identity.device_id}"
            assert get(conns[1], lookup)[0] == 404
            assert metric(conns[1], "replicated_total") == 0
            announce(conns[0], identity, server.url)
            # the claimed timestamp and the addresses: two changes for worker 1 to apply
            deadline = time.monotonic() + 10
            while metric(conns[1], "replicated_total") < 2:
                assert time.monotonic() < deadline, "worker 1 never applied the announcement"
            status, body = get(conns[1], lookup)
            assert status == 200 and json.loads(body)["addresses"] == ["tcp://192.0.2.1:22000"]
            assert metric(conns[0], "replicated_total") == 0  # nothing came back
            # a replay sent to the other worker is refused there too
            body_again = sign_announcement(identity, ["tcp://192.0.2.9:1"], 1, server.url)
            conns[1].request("POST", "/v1/announce", json.dumps(body_again))
            assert conns[1].getresponse().status == 400  # stale, never stored
    finally:
        assert server.stop() == 0


def test_workers_share_one_redis_without_replication(
    tmp_path: Path, identity: Identity, redis_url: str
) -> None:
    server = Server(tmp_path, "--store", redis_url, "--redis-prefix", f"workers{os.getpid()}:")
    try:
        for conns in connection_per_worker(server.url):
            announce(conns[0], identity, server.url)
            status, body = get(conns[1], f"/v1/lookup?device={identity.device_id}")
            assert status == 200 and json.loads(body)["addresses"] == ["tcp://192.0.2.1:22000"]
            assert metric(conns[1], "replicated_total") == 0
    finally:
        assert server.stop() == 0


def test_sigterm_stops_every_worker(tmp_path: Path) -> None:
    server = Server(tmp_path)
    workers = server.workers()
    assert len(workers) == WORKERS
    assert server.stop(signal.SIGTERM) == 0
    for pid in workers:  # reaped by the supervisor: gone, not zombies
        assert not Path(f"/proc/{pid}").exists()


def test_a_worker_that_dies_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    server = Server(tmp_path)
    first, second = server.workers()
    os.kill(first, signal.SIGKILL)
    code = server.proc.wait(timeout=30)
    assert code == 1
    message = rf"worker [01] \(pid {first}\) exited with status -9; all workers stopped"
    assert re.search(message, server.stderr), server.stderr
    assert not Path(f"/proc/{second}").exists()
    server.stop()


def test_workers_refuse_a_snapshot_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "discovery_server", "--workers", "2",
         "--store", str(tmp_path / "x.sqlite")],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "--workers takes --store memory or redis" in result.stderr


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """No orphans: a worker's stdin is the supervisor's pipe, and its end stops the worker."""
    server = Server(tmp_path)
    workers = server.workers()
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.05)  # polling /proc: these are not our children, we cannot wait() them
