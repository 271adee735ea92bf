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
