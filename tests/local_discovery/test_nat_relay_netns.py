"""NAT, simulated with network namespaces and routes only (test_nat_masquerade_netns.py
uses a real nftables masquerade):
A and B each sit on their own link to a middle namespace R that runs strelaysrv and our
discovery server; R does not forward, so A and B cannot reach each other at all. They
find each other through the discovery server, sync through the relay, and switch to a
direct connection once R starts routing between them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from netns import Namespace, nat_topology, needs_netns
from strelaysrv_process import STRELAYSRV, needs_strelaysrv
from test_cli_daemon import ok, wait_for
from test_local_discovery_netns import _start

from p2psync.config import DiscoveryConfig, load_config, save_config
from p2psync.identity import DeviceID

pytestmark = [needs_netns, needs_strelaysrv]

RELAY_PORT = 22067
DISCO_PORT = 22027


def _peer(ns: Namespace, home: Path) -> dict | None:
    done = subprocess.run(
        ns.command(sys.executable, "-m", "p2psync.cli", "--home", str(home), "peer", "list",
                   "--json"),
        capture_output=True, timeout=30, env=os.environ,
    )  # fmt: skip
    peers = json.loads(done.stdout) if done.returncode == 0 else []
    return peers[0] if peers else None


def _relay_id(keys: Path) -> DeviceID:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate((keys / "cert.pem").read_bytes())
    return DeviceID.from_cert_der(cert.public_bytes(Encoding.DER))


def test_nodes_behind_nat_sync_through_the_relay_then_go_direct(tmp_path: Path) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    logs = {n: tmp_path / f"{n}.log" for n in ("relay", "disco")}
    homes = {n: tmp_path / n / "home" for n in ("a", "b")}
    data = {n: tmp_path / n / "data" for n in ("a", "b")}
    env = {**os.environ, "P2PSYNC_DIAL_BACKOFF": "0.2"}
    with nat_topology() as (ns_a, ns_b, ns_r, open_path):
        try:
            keys = tmp_path / "relay-keys"
            keys.mkdir()
            with logs["relay"].open("ab") as log:
                procs.append(subprocess.Popen(
                    ns_r.command(str(STRELAYSRV), "-keys", str(keys), "-listen",
                                 f"0.0.0.0:{RELAY_PORT}", "-pools=", "-status-srv="),
                    stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            with logs["disco"].open("ab") as log:
                procs.append(subprocess.Popen(
                    ns_r.command(sys.executable, "-m", "discovery_server", "--listen",
                                 f"0.0.0.0:{DISCO_PORT}", "--url",
                                 f"http://{ns_r.address}:{DISCO_PORT}", "--retry-after", "1"),
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            wait_for(lambda: "URI:" in logs["relay"].read_text(errors="replace"), 30, "relay")
            wait_for(
                lambda: "discovery server on" in logs["disco"].read_text(errors="replace"),
                30,
                "discovery server",
            )
            relay = f"relay://{ns_r.address}:{RELAY_PORT}/?id={_relay_id(keys)}"
            ids = {}
            for n in ("a", "b"):
                ok(homes[n], "init", "--name", n, "--no-default-folder", "--no-mdns",
                   "--listen", "tcp://0.0.0.0:22001", "--api", "127.0.0.1:0")  # fmt: skip
                cfg = load_config(homes[n])
                discovery = DiscoveryConfig(
                    mdns=False, global_servers=(f"http://{ns_r.address}:{DISCO_PORT}",)
                )
                save_config(replace(cfg, relays=(relay,), discovery=discovery), homes[n])
                ids[n] = ok(homes[n], "id").strip()
                data[n].mkdir(parents=True)
            for me, other in (("a", "b"), ("b", "a")):
                ok(homes[me], "peer", "add", ids[other], "--name", other)  # dynamic only
                ok(homes[me], "folder", "add", str(data[me]), "--id", "nat", "--share", ids[other])
            (data["a"] / "through-the-relay.txt").write_text("A and B cannot reach each other\n")
            for n, ns in (("a", ns_a), ("b", ns_b)):
                os.environ["P2PSYNC_DIAL_BACKOFF"] = "0.2"  # inherited by _start
                procs.append(_start(ns, homes[n]))
            wait_for(lambda: (data["b"] / "through-the-relay.txt").exists(), 90, "sync by relay")
            peer = wait_for(lambda: _peer(ns_b, homes["b"]), 30, "b's peer list")
            assert peer["connected"] and peer["relayed"] and peer["address"] == relay, peer

            opened = time.monotonic()
            open_path()  # A and B can now reach each other
            peer = wait_for(
                lambda: (
                    (p := _peer(ns_b, homes["b"])) and p["connected"] and not p["relayed"] and p
                ),
                120,
                "a direct connection",
            )
            print(f"direct after {time.monotonic() - opened:.1f} s: {peer['address']}")
            assert peer["address"].startswith("tcp://10.231.8.1:")
            (data["b"] / "direct.txt").write_text("now direct\n")
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
