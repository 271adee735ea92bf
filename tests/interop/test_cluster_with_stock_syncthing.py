"""Mixed clusters: a folder offered by Syncthing is accepted with the CLI, and two stock
Syncthing devices and one p2psync daemon sharing a folder converge."""

from __future__ import annotations

from pathlib import Path

from stock_syncthing import StockSyncthing, needs_syncthing, stock_syncthing, wait_for
from test_cli_cluster import start, status
from test_cli_daemon import init_home, ok
from test_sync_with_stock_syncthing import in_sync, tree

pytestmark = needs_syncthing


def add_p2psync_peer(st: StockSyncthing, home: Path) -> str:
    system = status(home)["system"]
    st.add_device(system["device_id"], "p2p-node", system["listen_addresses"][0])
    ok(home, "peer", "add", st.device_id, "--name", st.name,
       "--address", f"tcp://127.0.0.1:{st.listen_port}")  # fmt: skip
    return str(system["device_id"])


def test_a_folder_offered_by_syncthing_is_pending_and_accepted(tmp_path: Path) -> None:
    home, ours, theirs = tmp_path / "p2p-home", tmp_path / "p2p-data", tmp_path / "st-data"
    theirs.mkdir()
    (theirs / "offered.txt").write_text("shared from Syncthing\n")
    init_home(home, "p2p-node")
    daemon = start(home)
    try:
        with stock_syncthing(tmp_path / "st-home", name="nas") as st:
            me = add_p2psync_peer(st, home)
            st.add_folder("photos", theirs, [me])
            wait_for(lambda: "photos" in ok(home, "folder", "pending"), 30, "the offer")
            ok(home, "folder", "accept", "photos", str(ours))
            wait_for(
                lambda: tree(ours) == {"offered.txt": b"shared from Syncthing\n"},
                60,
                "the accepted folder's file",
            )
            wait_for(lambda: in_sync(st, "photos", me), 30, "Syncthing: p2psync at 100%")
            assert "photos" not in ok(home, "folder", "pending")
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)


def test_two_syncthings_and_a_p2psync_daemon_converge(tmp_path: Path) -> None:
    home, ours = tmp_path / "p2p-home", tmp_path / "p2p-data"
    data = {name: tmp_path / f"{name}-data" for name in ("st1", "st2")}
    for path in (ours, *data.values()):
        path.mkdir()
    init_home(home, "p2p-node")
    daemon = start(home)
    try:
        with (
            stock_syncthing(tmp_path / "st1-home", name="st1") as st1,
            stock_syncthing(tmp_path / "st2-home", name="st2") as st2,
        ):
            me = add_p2psync_peer(st1, home)
            add_p2psync_peer(st2, home)
            st1.add_device(st2.device_id, "st2", f"tcp://127.0.0.1:{st2.listen_port}")
            st2.add_device(st1.device_id, "st1", f"tcp://127.0.0.1:{st1.listen_port}")
            ok(home, "folder", "add", str(ours), "--id", "team",
               "--share", st1.device_id, "--share", st2.device_id)  # fmt: skip
            st1.add_folder("team", data["st1"], [me, st2.device_id])
            st2.add_folder("team", data["st2"], [me, st1.device_id])
            (ours / "from-p2psync.txt").write_text("p\n")
            (data["st1"] / "from-st1.txt").write_text("one\n")
            (data["st2"] / "sub").mkdir()
            (data["st2"] / "sub" / "from-st2.txt").write_text("two\n")
            ok(home, "scan", "team")
            for st in (st1, st2):
                st.post("/rest/db/scan?folder=team", None)
            expected = {
                "from-p2psync.txt": b"p\n",
                "from-st1.txt": b"one\n",
                "sub": None,
                "sub/from-st2.txt": b"two\n",
            }
            wait_for(
                lambda: all(tree(p) == expected for p in (ours, *data.values())),
                90,
                "all three devices to converge",
            )
            for st in (st1, st2):
                wait_for(lambda st=st: in_sync(st, "team", me), 30, f"{st.name}: p2psync at 100%")
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)


def test_a_syncthing_introducer_introduces_its_peers_to_p2psync(tmp_path: Path) -> None:
    """st1 introduces st2 to the p2psync node (and the node to st2): the node then trusts
    st2, shares the folder with it and connects to it directly."""
    home, ours = tmp_path / "p2p-home", tmp_path / "p2p-data"
    data = {name: tmp_path / f"{name}-data" for name in ("st1", "st2")}
    for path in (ours, *data.values()):
        path.mkdir()
    (data["st2"] / "from-st2.txt").write_text("two\n")
    init_home(home, "p2p-node")
    daemon = start(home)
    try:
        with (
            stock_syncthing(tmp_path / "st1-home", name="st1") as st1,
            stock_syncthing(tmp_path / "st2-home", name="st2") as st2,
        ):
            system = status(home)["system"]
            me = system["device_id"]
            # st2 already shares the folder with its introducer st1 when st1 tells it about
            # the p2psync node (Syncthing introduces only for folders shared at that time)
            st2.add_device(st1.device_id, "st1", f"tcp://127.0.0.1:{st1.listen_port}",
                           introducer=True)  # fmt: skip
            st2.add_folder("team", data["st2"], [st1.device_id])
            ok(home, "peer", "add", st1.device_id, "--name", "st1", "--introducer",
               "--address", f"tcp://127.0.0.1:{st1.listen_port}")  # fmt: skip
            ok(home, "folder", "add", str(ours), "--id", "team", "--share", st1.device_id)
            st1.add_device(me, "p2p-node", system["listen_addresses"][0])
            st1.add_device(st2.device_id, "st2", f"tcp://127.0.0.1:{st2.listen_port}")
            st1.add_folder("team", data["st1"], [me, st2.device_id])

            def st2_introduced() -> dict | None:
                return next((d for d in status(home)["devices"] if d["id"] == st2.device_id), None)

            introduced = wait_for(st2_introduced, 60, "st2 introduced to the p2psync node")
            assert introduced["name"] == "st2"
            wait_for(lambda: st2_introduced()["connected"], 60, "a direct connection to st2")
            (folder,) = status(home)["folders"]
            assert {d["id"] for d in folder["devices"]} == {st1.device_id, st2.device_id}
            wait_for(lambda: (ours / "from-st2.txt").exists(), 60, "st2's file")
            assert st2.devices()[me]["introducedBy"] == st1.device_id
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)


def test_a_p2psync_introducer_introduces_its_peers_to_syncthing(tmp_path: Path) -> None:
    """Syncthing trusts p2psync node P as its introducer; P shares the folder with
    another p2psync node Q; Syncthing learns Q from P's ClusterConfig."""
    homes = {n: tmp_path / f"{n}-home" for n in ("p", "q")}
    data = {n: tmp_path / f"{n}-data" for n in ("p", "q", "st")}
    for path in data.values():
        path.mkdir()
    daemons = {}
    try:
        for n, home in homes.items():
            init_home(home, f"node-{n}")
            daemons[n] = start(home)
        systems = {n: status(h)["system"] for n, h in homes.items()}
        ok(homes["p"], "peer", "add", systems["q"]["device_id"], "--name", "node-q",
           "--address", systems["q"]["listen_addresses"][0])  # fmt: skip
        ok(homes["q"], "peer", "add", systems["p"]["device_id"], "--name", "node-p",
           "--address", systems["p"]["listen_addresses"][0])  # fmt: skip
        with stock_syncthing(tmp_path / "st-home", name="st") as st:
            p_id = add_p2psync_peer(st, homes["p"])
            device = st.devices()[p_id]
            st.client.put(
                f"/rest/config/devices/{p_id}", json={**device, "introducer": True}
            ).raise_for_status()
            ok(homes["p"], "folder", "add", str(data["p"]), "--id", "team",
               "--share", st.device_id, "--share", systems["q"]["device_id"])  # fmt: skip
            wait_for(lambda: "team" in ok(homes["q"], "folder", "pending"), 30, "q's offer")
            ok(homes["q"], "folder", "accept", "team", str(data["q"]))
            st.add_folder("team", data["st"], [p_id])
            q_id = systems["q"]["device_id"]
            learned = wait_for(
                lambda: st.devices().get(q_id), 60, "Syncthing to learn node q from node p"
            )
            assert learned["introducedBy"] == p_id and learned["name"] == "node-q"
            folder = st.get("/rest/config/folders/team")
            assert q_id in {d["deviceID"] for d in folder["devices"]}
    finally:
        for proc in daemons.values():
            proc.terminate()
            proc.wait(timeout=20)
