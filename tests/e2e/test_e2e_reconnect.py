"""Issue 18.4: a peer that refuses us (unknown device, device paused) is dialled with a
growing backoff, and `peer list` / `status` say why it is not connected."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from test_cli_cluster import start as start_daemon
from test_cli_daemon import ENV, init_home, ok, wait_for

BACKOFF_ENV = {**ENV, "P2PSYNC_DIAL_BACKOFF": "0.2"}
WINDOW = 8.0  # seconds of refusals counted


def start(home: Path) -> subprocess.Popen:
    return start_daemon(home, BACKOFF_ENV)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rejections(home: Path) -> list[float]:
    out = ok(home, "events", "--json", "--types", "DeviceRejected")
    return [e["time"] for e in json.loads(out)]


def device_status(home: Path) -> dict:
    return json.loads(ok(home, "status", "--json"))["devices"][0]


def test_a_refusing_peer_is_dialled_with_backoff_and_the_reason_is_shown(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    init_home(a, "alpha")
    init_home(b, "beta")
    procs = [start(a), start(b)]
    try:
        sys_a = json.loads(ok(a, "status", "--json"))["system"]
        sys_b = json.loads(ok(b, "status", "--json"))["system"]
        # a trusts b; b does not know a, so b refuses every connection from a
        ok(
            a,
            "peer",
            "add",
            sys_b["device_id"],
            "--name",
            "beta",
            "--address",
            sys_b["listen_addresses"][0],
        )
        first = wait_for(lambda: rejections(b), what="the first refusal")[0]
        wait_for(
            lambda: time.time() >= first + WINDOW and rejections(b),
            timeout=WINDOW + 10,
            what="the end of the counting window",
        )
        in_window = [t for t in rejections(b) if t < first + WINDOW]
        # before the fix: one attempt every 0.5 s (16 in 8 s); with a 0.2 s base doubling
        # per failure: about 0, 0.2, 0.6, 1.4, 3.0, 6.2 s -> 6 attempts
        assert 3 <= len(in_window) <= 8, in_window

        dev = wait_for(lambda: (d := device_status(a))["refusal"] and d, what="refusal shown")
        assert dev["refusal"] == "unknown device"
        assert dev["connected"] is False and dev["failures"] >= 3
        assert dev["last_seen"] is not None and dev["retry_in"] is not None
        listed = ok(a, "peer", "list")
        assert "refused by the peer: unknown device" in listed and "retry in" in listed
        assert "refused by the peer: unknown device" in ok(a, "status")

        # b trusts a but pauses it: a's next dial is refused with "device paused"
        ok(b, "peer", "add", sys_a["device_id"], "--name", "alpha")
        ok(b, "peer", "pause", sys_a["device_id"])
        ok(a, "peer", "resume", sys_b["device_id"])  # a config change: dial again at once
        wait_for(
            lambda: device_status(a)["refusal"] == "device paused",
            timeout=30,
            what="the paused refusal",
        )
        # b resumes a: they connect and the reason is cleared
        ok(b, "peer", "resume", sys_a["device_id"])
        ok(a, "peer", "resume", sys_b["device_id"])
        wait_for(lambda: device_status(a)["connected"], timeout=30, what="the connection")
        assert "connected at" in ok(a, "peer", "list")
    finally:
        stop(procs)
