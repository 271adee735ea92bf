"""The p2psync-discovery command as a real process: start, serve, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from dsrv_helpers import write_tls_files

from p2psync.discovery.announcement import sign_announcement
from p2psync.identity import Identity

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "discovery_server", "--listen", "127.0.0.1:0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the pytest timeout; EOF if the server dies
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        pytest.fail(f"server did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    return proc, url


def _stop(proc: subprocess.Popen[str], signum: int) -> int:
    proc.send_signal(signum)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_help_documents_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "discovery_server", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for option in (
        "--listen",
        "--store",
        "--cert",
        "--key",
        "--ttl",
        "--reannounce",
        "--rate",
        "--trust-forwarded",
        "--url",
    ):
        assert option in result.stdout


def test_bad_options_fail_clearly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "discovery_server", "--cert", __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--cert and --key go together" in result.stderr


def test_serves_and_keeps_registrations_across_a_restart(
    tmp_path: Path, identity: Identity
) -> None:
    store = str(tmp_path / "disco.sqlite")
    proc, url = _start("--store", store)
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            body = sign_announcement(identity, ["tcp://192.0.2.1:22000"], int(time.time()), url)
            assert http.post("/v1/announce", json=body).status_code == 204
    finally:
        assert _stop(proc, signal.SIGTERM) == 0

    proc, url = _start("--store", store)
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            found = http.get("/v1/lookup", params={"device": str(identity.device_id)})
            assert found.status_code == 200
            assert found.json()["addresses"] == ["tcp://192.0.2.1:22000"]
    finally:
        assert _stop(proc, signal.SIGINT) == 0


def test_a_silent_tls_client_is_dropped_at_the_header_timeout(tmp_path: Path) -> None:
    """The TLS handshake counts against --header-timeout (the server's own limit)."""
    cert, key = write_tls_files(tmp_path)
    proc, url = _start("--cert", str(cert), "--key", str(key), "--header-timeout", "1")
    try:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            start = time.monotonic()
            assert sock.recv(100) == b""  # closed by the server, before this 10 s timeout
            assert time.monotonic() - start < 1 + 3
        with httpx.Client(
            base_url=url, timeout=10, verify=ssl.create_default_context(cafile=str(cert))
        ) as http:
            assert http.get("/healthz").status_code == 200
    finally:
        assert _stop(proc, signal.SIGTERM) == 0
