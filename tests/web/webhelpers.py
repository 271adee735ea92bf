"""Helpers of the browser tests: real daemons, Debian's Chromium, signing in.

Playwright's own browser download is not used (nor reachable): the tests launch
/usr/bin/chromium and skip, saying so, only when it is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from p2psync.cli import cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
P2PSYNC = [sys.executable, "-m", "p2psync.cli"]
# A short first dial backoff: a device accepted in the browser is redialled quickly.
ENV = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1", "P2PSYNC_DIAL_BACKOFF": "0.2"}

NO_CHROMIUM = "Debian's chromium is not installed (apt-get install chromium)"


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ok(home: Path, *args: str) -> str:
    r = CliRunner().invoke(cli, ["--home", str(home), *args])
    assert r.exit_code == 0, (args, r.output)
    return r.output


class Daemon:
    """A real `p2psync run` subprocess with its own home."""

    def __init__(self, base: Path, name: str) -> None:
        self.home = base / name / "home"
        self.name = name
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
        self.proc = subprocess.Popen(
            [*P2PSYNC, "--home", str(self.home), "run"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (self.home / "api.address").exists(), what=f"daemon {name}")
        self.system = wait_for(self._system, what=f"daemon {name}'s API")
        self.url = f"http://{(self.home / 'api.address').read_text().strip()}"
        self.key = (self.home / "api.key").read_text().strip()

    def _system(self) -> dict | None:
        r = CliRunner().invoke(cli, ["--home", str(self.home), "status", "--json"])
        return json.loads(r.output)["system"] if r.exit_code == 0 else None

    @property
    def device_id(self) -> str:
        return self.system["device_id"]

    @property
    def listen(self) -> str:
        return self.system["listen_addresses"][0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sign_in(page, daemon: Daemon) -> None:
    page.goto(daemon.url + "/")
    page.get_by_label("API key").fill(daemon.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#own-device-id")
