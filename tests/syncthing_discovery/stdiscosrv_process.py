"""Debian's Syncthing discovery server (stdiscosrv) for tests: loopback only, temp dir."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from strelaysrv_process import _wait_listening, free_port

from p2psync.identity import DeviceID

STDISCOSRV = shutil.which("stdiscosrv")

needs_stdiscosrv = pytest.mark.skipif(
    STDISCOSRV is None,
    reason="the Debian package syncthing-discosrv is not installed (.ci/run installs it)",
)


class Discosrv:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "stdiscosrv"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def device_id(self) -> DeviceID:
        cert = x509.load_pem_x509_certificate((self.dir / "cert.pem").read_bytes())
        return DeviceID.from_cert_der(cert.public_bytes(Encoding.DER))

    @property
    def url(self) -> str:
        """What Syncthing and p2psync are configured with: pinned by ?id=."""
        return f"https://127.0.0.1:{self.port}/v2/?id={self.device_id}"

    def start(self) -> None:
        assert STDISCOSRV is not None
        with (self.dir / "stdiscosrv.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [STDISCOSRV,
                 "-cert", str(self.dir / "cert.pem"), "-key", str(self.dir / "key.pem"),
                 "-db-dir", str(self.dir / "db"), "-listen", f"127.0.0.1:{self.port}",
                 "-replication-listen", "127.0.0.1:0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_listening(self.port, 30)
        deadline = time.monotonic() + 10
        while not (self.dir / "cert.pem").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        path = self.dir / "stdiscosrv.log"
        return path.read_text(errors="replace") if path.exists() else ""
