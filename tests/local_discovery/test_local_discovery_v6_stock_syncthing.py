"""A stock Syncthing and a p2psync daemon, each in its own network namespace, find each
other through local discovery v4 over IPv6 multicast only ([ff12::8384]:21027), and sync.

p2psync's LAN discovery is restricted to its IPv6 address (it sends no IPv4 broadcast);
Syncthing's IPv4 broadcasts go to a port nobody listens on. So each learns of the other
only from the other's multicast on the test's own veth link.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from netns import add_ipv6, namespace_pair, needs_netns
from stock_syncthing import SYNCTHING, StockSyncthing, needs_syncthing
from test_cli_daemon import ok, wait_for
from test_local_discovery_stock_syncthing import _configure_syncthing
from test_local_discovery_v6_netns import _setup, _start

pytestmark = [needs_netns, needs_syncthing]


def _ipv6_only(st: StockSyncthing) -> None:
    """Listen on every address family; IPv4 broadcasts to a port no one listens on."""
    path = st.home / "config.xml"
    tree = ET.parse(path)
    options = tree.getroot().find("options")
    assert options is not None
    for key, value in {"listenAddress": "tcp://:22000", "localAnnouncePort": "21099",
                       "localAnnounceMCAddr": "[ff12::8384]:21027"}.items():  # fmt: skip
        element = options.find(key)
        if element is None:
            element = ET.SubElement(options, key)
        element.text = value
    tree.write(path)


def test_stock_syncthing_and_p2psync_meet_by_ipv6_multicast(tmp_path: Path) -> None:
    home, ours, theirs = tmp_path / "p2p" / "home", tmp_path / "p2p" / "data", tmp_path / "st"
    ours.mkdir(parents=True)
    theirs.mkdir()
    me = _setup(home, "p2p")
    st_home = tmp_path / "st-home"
    st_home.mkdir()
    st = StockSyncthing(st_home, "stock")
    st.configure()
    _configure_syncthing(st, me, theirs)
    _ipv6_only(st)
    ok(home, "peer", "add", st.device_id, "--name", "stock")  # dynamic only
    ok(home, "folder", "add", str(ours), "--id", "lan", "--share", st.device_id)
    (theirs / "from-syncthing.txt").write_text("multicast from a stock Syncthing\n")
    (ours / "from-p2psync.txt").write_text("multicast from p2psync\n")
    procs: list[subprocess.Popen[bytes]] = []
    with namespace_pair() as (ns_a, ns_b):
        v6_a, _ = add_ipv6((ns_a, ns_b))
        try:
            procs.append(_start(ns_a, home, v6_a))
            env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1", "STNODEFAULTFOLDER": "1"}
            with (st_home / "syncthing.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    ns_b.command(str(SYNCTHING), "serve", f"--home={st_home}", "--no-browser",
                                 "--no-restart", "--no-upgrade", "--skip-port-probing"),
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            wait_for(lambda: (ours / "from-syncthing.txt").exists(), 90, "Syncthing's file")
            wait_for(lambda: (theirs / "from-p2psync.txt").exists(), 60, "our file on Syncthing")
        except BaseException:
            print((home.parent / "daemon.log").read_text(errors="replace")[-5000:])
            print((st_home / "syncthing.log").read_text(errors="replace")[-5000:])
            raise
        finally:
            st.client.close()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
