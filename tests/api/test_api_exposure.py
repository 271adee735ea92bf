"""An API bound beyond loopback speaks plain HTTP: the daemon warns at start and
`p2psync status` shows it. The daemon runs in a private network namespace (unshare
--net), so its 0.0.0.0 bind reaches nothing but that namespace's own loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2psync.api.auth import exposure_warning
from p2psync.cli import cli


@pytest.mark.parametrize(
    "bound", ["127.0.0.1:8384", "127.3.4.5:1", "[::1]:8384", "[::ffff:127.0.0.1]:1"]
)
def test_loopback_binds_get_no_warning(bound: str) -> None:
    assert exposure_warning(bound) is None


@pytest.mark.parametrize(
    "bound", ["0.0.0.0:8384", "[::]:8384", "192.168.1.5:8384", "[fe80::1%eth0]:1"]
)
def test_other_binds_are_warned_about(bound: str) -> None:
    warning = exposure_warning(bound)
    assert warning is not None and bound in warning and "plain HTTP" in warning


# Runs inside the namespace: loopback up, the daemon started, `status` polled until the
# API answers, then the daemon stopped. Prints what `status` printed.
DRIVER = """
import os, signal, subprocess, sys, time
home, log = sys.argv[1], sys.argv[2]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
cli = [sys.executable, "-m", "p2psync.cli", "--home", home]
with open(log, "w") as out:
    daemon = subprocess.Popen([*cli, "run"], stdout=out, stderr=out)
try:
    deadline = time.monotonic() + 60
    while True:
        status = subprocess.run([*cli, "status"], capture_output=True, text=True)
        if status.returncode == 0:
            print(status.stdout)
            break
        assert daemon.poll() is None and time.monotonic() < deadline, status.stderr
        time.sleep(0.1)  # poll interval while the daemon starts
finally:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)
"""


def _can_unshare_net() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_net(), reason="needs unshare --net (root or user namespaces)")
def test_a_daemon_with_its_api_on_all_interfaces_warns_and_status_shows_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init = CliRunner().invoke(
        cli,
        [
            "--home",
            str(home),
            "init",
            "--name",
            "alpha",
            "--no-default-folder",
            "--no-mdns",
            "--listen",
            "tcp://127.0.0.1:0",
            "--api",
            "0.0.0.0:0",
        ],
    )
    assert init.exit_code == 0, init.output
    log = tmp_path / "daemon.log"
    env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", DRIVER, str(home), str(log)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + log.read_text()
    logged = log.read_text()
    assert "beyond this machine, over plain HTTP" in logged, logged
    shown = " ".join(result.stdout.split())  # status wraps long lines
    assert "Warning: the control API listens on 0.0.0.0:" in shown, result.stdout
    assert "SSH tunnel" in shown
