"""The processes a discovery benchmark runs: a server, a private redis-server, and
reading their CPU time and memory from /proc."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench.errors import BenchError

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = "/usr/bin/redis-server"
SERVER_URL = "http://discovery.bench.invalid"  # signed over; same for every run
# All load comes from 127.0.0.1, so the per-source limit is raised out of reach; bodies are
# signed before both runs, hence the wide window; no expiry sweep during a run.
SERVER_FLAGS = ["--rate", "1e9", "--burst", str(10**9), "--window", "3600"]
SERVER_FLAGS += ["--ttl", "7200", "--reannounce", "3600", "--snapshot-interval", "3600"]
SERVER_FLAGS += ["--log-level", "warning"]


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
