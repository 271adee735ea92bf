"""Helpers of the share-link tests: real daemons through the CLI, a pinned HTTPS client,
raw requests (for paths an HTTP client would normalise), an in-process link service with
an injected clock."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from click.testing import CliRunner

from p2psync.cli import cli

P2PSYNC = [sys.executable, "-m", "p2psync.cli"]
ENV = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_cli(home: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["--home", str(home), *args], input=input)


def ok(home: Path, *args: str, input: str | None = None) -> str:
    r = run_cli(home, *args, input=input)
    assert r.exit_code == 0, (args, r.output)
    return r.output


def ok_json(home: Path, *args: str, input: str | None = None):
    out = ok(home, *args, "--json", input=input)
    return json.loads(out[out.index("{") :] if "{" in out else out)


class Daemon:
    """A real `p2psync run` subprocess with its own home and one folder "docs"."""

    def __init__(self, base: Path, name: str = "a") -> None:
        self.home = base / name / "home"
        self.data = base / name / "docs"
        self.data.mkdir(parents=True)
        ok(
            self.home,
            "init",
            "--name",
            name,
            "--no-default-folder",
            "--no-mdns",
            "--listen",
            "tcp://127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        )
        ok(self.home, "folder", "add", "--id", "docs", str(self.data))
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        (self.home / "api.address").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [*P2PSYNC, "--home", str(self.home), "run"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (self.home / "api.address").exists(), what="daemon address")
        wait_for(lambda: run_cli(self.home, "status", "--json").exit_code == 0, what="API")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def cert(self) -> Path:
        return self.home / "links-tls" / "cert.pem"


def pinned(cert: Path, **kw) -> httpx.Client:
    """An HTTPS client that trusts only ``cert`` (the link listener's own)."""
    context = ssl.create_default_context(cafile=str(cert))
    return httpx.Client(verify=context, trust_env=False, timeout=30.0, **kw)


def raw_get(
    url_base: str, cert: Path, raw_path: bytes, method: bytes = b"GET"
) -> tuple[int, bytes]:
    """Send ``raw_path`` verbatim (no dot-segment normalisation); (status, body)."""
    hostport = url_base.split("//", 1)[1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(
                method
                + b" "
                + raw_path
                + b" HTTP/1.1\r\nHost: "
                + hostport.encode()
                + b"\r\nConnection: close\r\n\r\n"
            )
            data = bytearray()
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Roots:
    """folder ID -> path, as the node's config would answer."""

    paths: dict[str, Path] = field(default_factory=dict)

    def __call__(self, folder_id: str) -> Path | None:
        return self.paths.get(folder_id)
