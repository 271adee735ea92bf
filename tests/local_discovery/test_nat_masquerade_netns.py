"""Two nodes behind two real NATs (nftables masquerade in router namespaces) meet through
the discovery server and sync through the relay; a port forward then lets them go direct.

Topology (netns.masquerade_topology): A on 10.231.41.2 behind router RA (public
10.231.51.2), B on 10.231.42.2 behind RB (public 10.231.52.2), strelaysrv (``-pools=``)
and our discovery server in an "internet" namespace at 10.231.60.1. The routers
masquerade outbound traffic and drop new inbound connections, as home routers do. Every
namespace and link is created and removed by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from netns import (
    SERVICES,
    Namespace,
    NatSite,
    forward_port,
    masquerade_topology,
    masqueraded_packets,
    needs_netns,
    needs_nft,
)
from strelaysrv_process import STRELAYSRV, needs_strelaysrv
from test_cli_daemon import ok, wait_for
from test_local_discovery_netns import _start
from test_nat_relay_netns import _peer, _relay_id

from p2psync.config import DiscoveryConfig, load_config, save_config

pytestmark = [needs_netns, needs_nft, needs_strelaysrv]

RELAY_PORT, DISCO_PORT, LISTEN_PORT = 22067, 22027, 22001
_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except OSError as exc:
    print(f"failed: {exc}")
"""


def _run(ns: Namespace, *argv: str) -> str:
    done = subprocess.run(ns.command(*argv), capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def _lookup(inet: Namespace, device: str) -> list[str]:
    """What the discovery server tells anyone about ``device``."""
    url = f"http://{SERVICES}:{DISCO_PORT}/v1/lookup?device={device}"
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
    out = _run(inet, sys.executable, "-c", code, url)
    return list(json.loads(out)["addresses"]) if out else []


def _dial(site: NatSite, address: str) -> str:
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return _run(site.host, sys.executable, "-c", _CONNECT, host.strip("[]"), port)


def test_two_nodes_behind_masquerading_nats_meet_via_relay_then_port_forward(
    tmp_path: Path,
) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    logs = {n: tmp_path / f"{n}.log" for n in ("relay", "disco")}
    homes = {n: tmp_path / n / "home" for n in ("a", "b")}
    data = {n: tmp_path / n / "data" for n in ("a", "b")}
    env = {**os.environ, "P2PSYNC_DIAL_BACKOFF": "0.2"}
    with masquerade_topology() as (site_a, site_b, inet):
        try:
            keys = tmp_path / "relay-keys"
            keys.mkdir()
            with logs["relay"].open("ab") as log:
                procs.append(subprocess.Popen(
                    inet.command(str(STRELAYSRV), "-keys", str(keys), "-listen",
                                 f"{SERVICES}:{RELAY_PORT}", "-pools=", "-status-srv="),
                    stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            with logs["disco"].open("ab") as log:
                procs.append(subprocess.Popen(
                    inet.command(sys.executable, "-m", "discovery_server", "--listen",
                                 f"{SERVICES}:{DISCO_PORT}", "--url",
                                 f"http://{SERVICES}:{DISCO_PORT}", "--retry-after", "1"),
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            wait_for(lambda: "URI:" in logs["relay"].read_text(errors="replace"), 30, "relay")
            wait_for(
                lambda: "discovery server on" in logs["disco"].read_text(errors="replace"),
                30,
                "discovery server",
            )
            relay = f"relay://{SERVICES}:{RELAY_PORT}/?id={_relay_id(keys)}"
            ids = {}
            for n in ("a", "b"):
                ok(homes[n], "init", "--name", n, "--no-default-folder", "--no-mdns",
                   "--listen", f"tcp://0.0.0.0:{LISTEN_PORT}", "--api", "127.0.0.1:0")  # fmt: skip
                cfg = load_config(homes[n])
                discovery = DiscoveryConfig(
                    mdns=False, global_servers=(f"http://{SERVICES}:{DISCO_PORT}",)
                )
                save_config(replace(cfg, relays=(relay,), discovery=discovery), homes[n])
                ids[n] = ok(homes[n], "id").strip()
                data[n].mkdir(parents=True)
            for me, other in (("a", "b"), ("b", "a")):
                ok(homes[me], "peer", "add", ids[other], "--name", other)  # dynamic only
                ok(homes[me], "folder", "add", str(data[me]), "--id", "nat", "--share", ids[other])
            (data["a"] / "through-the-relay.txt").write_text("behind two NATs\n")
            os.environ["P2PSYNC_DIAL_BACKOFF"] = "0.2"  # inherited by _start
            for n, site in (("a", site_a), ("b", site_b)):
                procs.append(_start(site.host, homes[n]))
            wait_for(lambda: (data["b"] / "through-the-relay.txt").exists(), 90, "sync by relay")
            peer = wait_for(lambda: _peer(site_b.host, homes["b"]), 30, "b's peer list")
            assert peer["connected"] and peer["relayed"] and peer["address"] == relay, peer

            # The world sees A only as its router's public address (masquerade), and no
            # address of A that anyone learns can be dialled from B.
            assert masqueraded_packets(site_a) > 0 and masqueraded_packets(site_b) > 0
            announced = wait_for(lambda: _lookup(inet, ids["a"]), 30, "a's announcement")
            public = f"tcp://{site_a.public}:{LISTEN_PORT}"
            assert public in announced, announced
            assert not any(site_a.host.address in a for a in announced), announced
            direct = [a for a in announced if a.startswith("tcp://")]
            for address in [*direct, f"tcp://{site_a.host.address}:{LISTEN_PORT}"]:
                assert _dial(site_b, address).startswith("failed"), address

            forwarded = time.monotonic()
            forward_port(site_a, LISTEN_PORT)  # A's owner opens a port on the router
            assert _dial(site_b, public) == "connected"
            peer = wait_for(
                lambda: (
                    (p := _peer(site_b.host, homes["b"])) and p["connected"] and not p["relayed"]
                    and p
                ),
                120,
                "a direct connection",
            )  # fmt: skip
            print(f"direct after {time.monotonic() - forwarded:.1f} s: {peer['address']}")
            assert peer["address"] == public
            (data["b"] / "direct.txt").write_text("now direct, through a port forward\n")
            wait_for(lambda: (data["a"] / "direct.txt").exists(), 60, "sync direct")
        except BaseException:
            for name, path in [
                *logs.items(),
                *((n, homes[n].parent / "daemon.log") for n in homes),
            ]:
                if path.exists():
                    print(f"---- {name} ----\n{path.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            os.environ.pop("P2PSYNC_DIAL_BACKOFF", None)
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
