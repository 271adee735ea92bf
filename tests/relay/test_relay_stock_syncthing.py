"""A stock Syncthing and a p2psync daemon that cannot dial each other sync through the
same strelaysrv: Syncthing joins the relay as a listener (its relay:// listen address),
each knows the other only by that relay."""

from __future__ import annotations

from pathlib import Path

from stock_syncthing import needs_syncthing, stock_syncthing, wait_for
from strelaysrv_process import Relay, free_port
from test_cli_daemon import init_home, ok
from test_relay_e2e import Node, arrives, write

pytestmark = needs_syncthing


def test_stock_syncthing_syncs_with_p2psync_through_the_relay(tmp_path: Path, relay: Relay) -> None:
    node = Node("p2p", tmp_path / "p2p" / "home", tmp_path / "p2p" / "data")
    node.data.mkdir(parents=True)
    theirs = tmp_path / "st-data"
    theirs.mkdir()
    init_home(node.home, node.name)
    ok(node.home, "relay", "add", relay.url)
    with stock_syncthing(tmp_path / "st-home", name="stock") as st:
        try:
            node.start()
            # Syncthing: loopback TCP listener plus our relay; nothing else (no pools,
            # no discovery). It knows the p2psync node only through the relay.
            st.client.patch(
                "/rest/config/options",
                json={
                    "relaysEnabled": True,
                    "listenAddresses": [f"tcp://127.0.0.1:{st.listen_port}", relay.url],
                },
            ).raise_for_status()
            st.add_device(node.device_id, "p2p", relay.url)
            st.add_folder("mixed", theirs, [node.device_id])
            closed = f"tcp://127.0.0.1:{free_port()}"
            ok(node.home, "peer", "add", st.device_id, "--name", "stock",
               "--address", closed, "--address", relay.url, "--no-dynamic")  # fmt: skip
            ok(node.home, "folder", "add", str(node.data), "--id", "mixed", "--share", st.device_id)
            peer: dict = {}

            def connected() -> bool:
                # The peer as it was when seen connected: both sides dial through the relay
                # at first and Syncthing keeps the newer connection, so a second look may
                # fall between two of them.
                peer.clear()
                peer.update(node.peer())
                return bool(peer["connected"])

            wait_for(connected, 90, "a connection through the relay")
            assert peer["relayed"] and peer["address"] == relay.url
            assert peer["protocol"] == "bep/1.0" and peer["client"].startswith("syncthing")
            write(node, "from-p2psync.txt", b"through the relay to Syncthing\n", "mixed")
            wait_for(
                lambda: (
                    (theirs / "from-p2psync.txt").exists()
                    and (theirs / "from-p2psync.txt").read_bytes()
                    == b"through the relay to Syncthing\n"
                ),
                90,
                "the file on Syncthing",
            )
            (theirs / "from-syncthing.txt").write_bytes(b"back through the relay\n")
            st.client.post("/rest/db/scan", params={"folder": "mixed"}).raise_for_status()
            wait_for(
                lambda: arrives(node, "from-syncthing.txt", b"back through the relay\n"),
                90,
                "the file on p2psync",
            )
            connections = st.get("/rest/system/connections")["connections"]
            assert connections[node.device_id]["type"].startswith("relay"), connections
        except BaseException:
            print(f"---- p2psync log ----\n{node.log()[-6000:]}")
            print(f"---- syncthing log ----\n{st.log()}")
            print(f"---- relay log ----\n{relay.log()[-3000:]}")
            raise
        finally:
            node.stop()
