"""Two `p2psync run` daemons in their own network namespaces (joined by a veth pair) find
each other only through Syncthing's local discovery v4 broadcasts, and sync."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from netns import Namespace, namespace_pair, needs_netns
from test_cli_daemon import ok, wait_for

from p2psync.config import DiscoveryConfig, load_config, save_config

pytestmark = needs_netns


def _setup(home: Path, name: str) -> str:
    ok(home, "init", "--name", name, "--no-default-folder", "--no-mdns",
       "--listen", "tcp://0.0.0.0:22001", "--api", "127.0.0.1:0")  # fmt: skip
    cfg = load_config(home)
    save_config(replace(cfg, discovery=DiscoveryConfig(mdns=False, syncthing_local=True)), home)
    return ok(home, "id").strip()


def _start(ns: Namespace, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": ns.address}
    log = (home.parent / "daemon.log").open("ab")
    return subprocess.Popen(
        ns.command(sys.executable, "-m", "p2psync.cli", "--home", str(home), "run"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _peer(ns: Namespace, home: Path) -> dict | None:
    done = subprocess.run(
        ns.command(sys.executable, "-m", "p2psync.cli", "--home", str(home), "peer", "list",
                   "--json"),
        capture_output=True, timeout=30, env=os.environ,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    peers = json.loads(done.stdout)
    return peers[0] if peers else None


def test_two_daemons_find_each_other_by_local_discovery_only(tmp_path: Path) -> None:
    homes = {n: tmp_path / n / "home" for n in ("a", "b")}
    data = {n: tmp_path / n / "data" for n in ("a", "b")}
    ids = {n: _setup(homes[n], n) for n in ("a", "b")}
    for me, other in (("a", "b"), ("b", "a")):
        data[me].mkdir(parents=True)
        ok(homes[me], "peer", "add", ids[other], "--name", other)  # dynamic only
        ok(homes[me], "folder", "add", str(data[me]), "--id", "lan", "--share", ids[other])
    (data["a"] / "over-the-lan.txt").write_text("found by a broadcast\n")
    procs: list[subprocess.Popen[bytes]] = []
    with namespace_pair() as (ns_a, ns_b):
        try:
            procs = [_start(ns_a, homes["a"]), _start(ns_b, homes["b"])]
            wait_for(lambda: (data["b"] / "over-the-lan.txt").exists(), 60, "the file on b")
            peer = wait_for(lambda: _peer(ns_b, homes["b"]), 30, "b's peer list")
            assert peer["connected"] and peer["address"].startswith(f"tcp://{ns_a.address}:")
        except BaseException:
            for n in ("a", "b"):
                log = homes[n].parent / "daemon.log"
                print(f"---- {n} ----\n{log.read_text(errors='replace')[-5000:]}")
            raise
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
