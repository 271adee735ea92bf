"""Two `p2psync run` daemons in their own network namespaces find each other only through
Syncthing's local discovery v4 over IPv6 multicast (``[ff12::8384]:21027``), and sync.

LAN discovery is restricted to each namespace's IPv6 address, so there is no IPv4
broadcast target at all: only the multicast on the test's own veth link can introduce
them. The daemons listen on ``tcp://[::]:22001``, so the address each learns is the
multicast's source, a link-local address with its zone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from netns import Namespace, add_ipv6, namespace_pair, needs_netns
from test_cli_daemon import ok, wait_for
from test_local_discovery_netns import _peer

from p2psync.config import DiscoveryConfig, load_config, save_config

pytestmark = needs_netns


def _setup(home: Path, name: str) -> str:
    ok(home, "init", "--name", name, "--no-default-folder", "--no-mdns",
       "--listen", "tcp://[::]:22001", "--api", "127.0.0.1:0")  # fmt: skip
    cfg = load_config(home)
    save_config(replace(cfg, discovery=DiscoveryConfig(mdns=False, syncthing_local=True)), home)
    return ok(home, "id").strip()


def _start(ns: Namespace, home: Path, lan_address: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": lan_address}  # IPv6 only
    log = (home.parent / "daemon.log").open("ab")
    return subprocess.Popen(
        ns.command(sys.executable, "-m", "p2psync.cli", "--home", str(home), "run"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_two_daemons_find_each_other_by_ipv6_multicast_only(tmp_path: Path) -> None:
    homes = {n: tmp_path / n / "home" for n in ("a", "b")}
    data = {n: tmp_path / n / "data" for n in ("a", "b")}
    ids = {n: _setup(homes[n], n) for n in ("a", "b")}
    for me, other in (("a", "b"), ("b", "a")):
        data[me].mkdir(parents=True)
        ok(homes[me], "peer", "add", ids[other], "--name", other)  # dynamic only
        ok(homes[me], "folder", "add", str(data[me]), "--id", "lan6", "--share", ids[other])
    (data["a"] / "over-ipv6.txt").write_text("found by a multicast\n")
    procs: list[subprocess.Popen[bytes]] = []
    with namespace_pair() as (ns_a, ns_b):
        v6_a, v6_b = add_ipv6((ns_a, ns_b))
        try:
            procs = [_start(ns_a, homes["a"], v6_a), _start(ns_b, homes["b"], v6_b)]
            wait_for(lambda: (data["b"] / "over-ipv6.txt").exists(), 60, "the file on b")
            peer = wait_for(lambda: _peer(ns_b, homes["b"]), 30, "b's peer list")
            assert peer["connected"] and peer["address"].startswith("tcp://[fe80::"), peer
            log_a = (homes["a"].parent / "daemon.log").read_text(errors="replace")
            assert "multicast ff12::8384" in log_a
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
