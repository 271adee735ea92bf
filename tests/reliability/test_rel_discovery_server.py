"""The discovery server as a real process against slow and greedy clients on loopback:
heads and bodies trickled a byte at a time, many connections from one address, a
file-handle table too small for the attack, clients that leave mid-body. After each,
/healthz answers promptly, an announcement and its lookup still work, and the log holds
a few lines, no traceback.

Attackers connect from 127.0.0.2 (all of 127.0.0.0/8 is loopback), the honest client
from 127.0.0.1. Timeouts are shortened on the command line so the tests run fast.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from p2psync.discovery.announcement import sign_announcement
from p2psync.identity import Identity, generate_identity

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = "127.0.0.2"
WITHIN = 10.0  # deadline for anything the server should do well before it
GENEROUS = ("--rate", "1000", "--burst", "1000")  # attackers are not stopped by the rate limit


@dataclass
class Server:
    url: str
    host: str
    port: int
    log: Path

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@contextmanager
def discovery_server(tmp_path: Path, *args: str, nofile: int | None = None) -> Iterator[Server]:
    """``python -m discovery_server`` on 127.0.0.1:<free port>, its log in a file;
    ``nofile`` lowers its file-handle limit. Stopped with SIGTERM (killed if stuck)."""
    log = tmp_path / "server.log"

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "discovery_server", "--listen", "127.0.0.1:0", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            preexec_fn=limit_files,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # EOF if the server dies
        if "listening on" not in line:
            pytest.fail(f"server did not start: {line!r}; log: {log.read_text()}")
        url = line.split("listening on ", 1)[1].split()[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield Server(url, host, int(port), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def attacker_socket(server: Server, source: str = ATTACKER) -> socket.socket | None:
    """A connection from ``source``, or None if the kernel's backlog refused it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(0.5)
    try:
        sock.connect((server.host, server.port))
    except OSError:
        sock.close()
        return None
    return sock


def trickle(sock: socket.socket, data: bytes, every: float) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time, ``every`` seconds apart, until the server answers
    or closes: (seconds it took, what came back). Fails if the server takes it all."""
    start = time.monotonic()
    sock.settimeout(every)  # the trickle's pace: each wait for an answer lasts this long
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            first = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset by the server
            return time.monotonic() - start, b""
        took = time.monotonic() - start
        return took, first + rest_of_answer(sock)
    raise AssertionError(f"the server took {len(data)} trickled bytes")


def rest_of_answer(sock: socket.socket, within: float = 5.0) -> bytes:
    """What else the server sends until it closes (an answer's body may come in a second
    segment after its head)."""
    sock.settimeout(within)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except OSError:  # timed out or reset: what came is all there is
        pass
    return out


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True once the server closes ``sock`` (answer or not) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def assert_still_serves(server: Server, identity: Identity) -> float:
    """/healthz, an announcement and its lookup work; the seconds /healthz took."""
    with httpx.Client(base_url=server.url, timeout=WITHIN) as http:
        start = time.monotonic()
        assert http.get("/healthz").status_code == 200
        took = time.monotonic() - start
        body = sign_announcement(identity, ["tcp://192.0.2.1:22000"], int(time.time()), server.url)
        assert http.post("/v1/announce", json=body).status_code == 204
        found = http.get("/v1/lookup", params={"device": str(identity.device_id)})
        assert found.status_code == 200
        assert found.json()["addresses"] == ["tcp://192.0.2.1:22000"]
    return took


def assert_quiet(server: Server, most: int) -> int:
    """The log has at most ``most`` lines and no traceback; its length."""
    lines = server.log_lines()
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines[:40])
    assert len(lines) <= most, "\n".join(lines[:40])
    return len(lines)


@pytest.fixture(scope="module")
def identity() -> Identity:
    return generate_identity()


HEAD = b"POST /v1/announce HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def test_a_trickled_head_is_cut_at_the_header_timeout(
    tmp_path: Path, identity: Identity, outcomes
) -> None:
    with discovery_server(tmp_path, "--header-timeout", "1", *GENEROUS) as server:
        sock = attacker_socket(server)
        assert sock is not None
        with sock:
            took, _ = trickle(sock, HEAD + b"X-Slow: a\r\n" * 100, every=0.05)
        assert took < 1 + 2  # the whole head would take 75 s at this pace
        healthz = assert_still_serves(server, identity)
        assert healthz < 2
    lines = assert_quiet(server, most=5)
    outcomes.record(
        "discovery",
        "request head trickled 20 bytes/s (--header-timeout 1)",
        "closed at the deadline, still serving",
        detail=f"closed after {took:.1f} s; /healthz {healthz * 1000:.0f} ms; {lines} log lines",
    )


def test_a_trickled_body_gets_408_at_the_body_timeout(
    tmp_path: Path, identity: Identity, outcomes
) -> None:
    with discovery_server(tmp_path, "--body-timeout", "1", *GENEROUS) as server:
        sock = attacker_socket(server)
        assert sock is not None
        with sock:
            sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")
            took, answer = trickle(sock, b"{" * 1000, every=0.05)
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer
        assert took < 1 + 2
        healthz = assert_still_serves(server, identity)
        assert healthz < 2
    lines = assert_quiet(server, most=5)
    outcomes.record(
        "discovery",
        "announce body trickled 20 bytes/s (--body-timeout 1)",
        "refused (408), still serving",
        detail=f"408 after {took:.1f} s; /healthz {healthz * 1000:.0f} ms; {lines} log lines",
    )


def test_many_connections_from_one_address_are_capped(
    tmp_path: Path, identity: Identity, outcomes
) -> None:
    args = ("--max-connections-per-address", "4", *GENEROUS)
    with discovery_server(tmp_path, *args) as server, ExitStack() as held:
        socks = [attacker_socket(server) for _ in range(30)]
        for sock in socks:
            assert sock is not None
            held.callback(sock.close)
            sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{")  # then nothing more
        closed = [closed_by_server(sock, within=0.5) for sock in socks[4:]]
        # beyond the 4th: closed at once (the body timeout is 10 s)
        assert all(closed)
        assert not any(closed_by_server(sock, within=0.01) for sock in socks[:4])
        healthz = assert_still_serves(server, identity)
        assert healthz < 2
        with httpx.Client(base_url=server.url, timeout=WITHIN) as http:
            metrics = http.get("/metrics").text
        assert "p2psync_discovery_connections_refused_total 26" in metrics
    lines = assert_quiet(server, most=6)  # start, one warning for the refusals, stop
    outcomes.record(
        "discovery",
        "30 connections from one address holding bodies (cap 4 per address)",
        "26 closed at once, still serving",
        detail=f"/healthz {healthz * 1000:.0f} ms from another address; {lines} log lines",
    )


def test_a_small_file_handle_table_is_not_exhausted(
    tmp_path: Path, identity: Identity, outcomes
) -> None:
    # 100 handles: the server caps itself at 36 connections, 32 from one address
    with discovery_server(tmp_path, *GENEROUS, nofile=100) as server, ExitStack() as held:
        for _ in range(150):
            sock = attacker_socket(server)
            if sock is not None:
                held.callback(sock.close)
                try:
                    sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{")
                except OSError:
                    pass  # already closed: its address held its cap
        healthz = assert_still_serves(server, identity)
        assert healthz < 2
    assert "at most 36 connections, 32 per address" in server.log.read_text()
    lines = assert_quiet(server, most=6)
    outcomes.record(
        "discovery",
        "150 connections holding bodies, server limited to 100 file handles",
        "capped below the limit (36), no EMFILE, still serving",
        detail=f"/healthz {healthz * 1000:.0f} ms; {lines} log lines, no traceback",
    )


def test_clients_leaving_mid_body_leave_no_traceback(
    tmp_path: Path, identity: Identity, outcomes
) -> None:
    with discovery_server(tmp_path, *GENEROUS) as server:
        for _ in range(20):
            sock = attacker_socket(server)
            assert sock is not None
            with sock:
                sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{")
        assert assert_still_serves(server, identity) < 2
        with httpx.Client(base_url=server.url, timeout=WITHIN) as http:
            deadline = time.monotonic() + WITHIN
            while 'reason="client-disconnect"} 20' not in http.get("/metrics").text:
                assert time.monotonic() < deadline, "the 20 disconnects were not counted"
                time.sleep(0.05)  # poll interval while waiting for the condition above
    lines = assert_quiet(server, most=4)
    outcomes.record(
        "discovery",
        "20 clients close mid-body",
        "counted (client-disconnect), not logged",
        trials=20,
        detail=f"{lines} log lines, no traceback",
    )
