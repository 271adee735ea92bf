"""Debian's Syncthing relay server (strelaysrv) for tests: loopback only, no pools.

``-pools=""`` keeps it out of every public relay pool, ``-status-srv ""`` turns its
status server off, and its keys live in the test's temp dir. It can be stopped and
started again on the same port with the same keys (a relay restart).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from p2psync.identity import DeviceID

STRELAYSRV = shutil.which("strelaysrv")

needs_strelaysrv = pytest.mark.skipif(
    STRELAYSRV is None,
    reason="the Debian package syncthing-relaysrv is not installed (.ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"strelaysrv not listening on {port} after {timeout} s"
                ) from None
            time.sleep(0.05)


class Relay:
    def __init__(self, workdir: Path, *, ping_interval: str = "1m0s") -> None:
        self.keys = workdir / "relay-keys"
        self.keys.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "strelaysrv.log"
        self.port = free_port()
        self.ping_interval = ping_interval
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def device_id(self) -> DeviceID:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = x509.load_pem_x509_certificate((self.keys / "cert.pem").read_bytes())
        return DeviceID.from_cert_der(cert.public_bytes(Encoding.DER))

    @property
    def url(self) -> str:
        return f"relay://127.0.0.1:{self.port}/?id={self.device_id}"

    def start(self) -> None:
        assert STRELAYSRV is not None and self.proc is None
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                STRELAYSRV,
                "-keys",
                str(self.keys),
                "-listen",
                f"127.0.0.1:{self.port}",
                "-pools=",
                "-status-srv=",
                "-ping-interval",
                self.ping_interval,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_listening(self.port, 20)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
