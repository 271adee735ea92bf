"""A `p2psync run` daemon and a stock Syncthing share a folder, set up the way a user
would: the CLI on our side, Syncthing's REST API (what its web GUI calls) on the other."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from stock_syncthing import StockSyncthing, needs_syncthing, stock_syncthing, wait_for
from test_cli_cluster import start, status
from test_cli_daemon import init_home, ok

pytestmark = needs_syncthing

INTERNAL = (".p2p", ".stfolder", ".syncthing.", ".stversions")


def tree(root: Path) -> dict[str, bytes | None]:
    """Every user file and directory under ``root`` (directories map to None)."""
    out: dict[str, bytes | None] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(INTERNAL) for part in rel.parts):
            continue
        out[rel.as_posix()] = path.read_bytes() if path.is_file() else None
    return out


def in_sync(st: StockSyncthing, folder: str, device: str) -> bool:
    completion = st.get(f"/rest/db/completion?folder={folder}&device={device}")
    return completion["completion"] == 100 and completion["needItems"] == 0


def test_a_p2psync_daemon_and_stock_syncthing_sync_both_ways(tmp_path: Path) -> None:
    home, ours, theirs = tmp_path / "p2p-home", tmp_path / "p2p-data", tmp_path / "st-data"
    ours.mkdir()
    theirs.mkdir()
    (ours / "from-p2psync.txt").write_text("written on the p2psync node\n")
    (ours / "docs").mkdir()
    (ours / "docs" / "multi-block.bin").write_bytes(os.urandom(300_000))
    (ours / "empty.txt").write_bytes(b"")
    (theirs / "from-syncthing.txt").write_text("written on Syncthing\n")
    (theirs / "photos").mkdir()
    (theirs / "photos" / "img.raw").write_bytes(os.urandom(200_000))

    with stock_syncthing(tmp_path / "st-home", name="stock") as st:
        init_home(home, "p2p-node")
        daemon = start(home)
        try:
            system = status(home)["system"]
            me, my_address = system["device_id"], system["listen_addresses"][0]
            ok(home, "peer", "add", st.device_id, "--name", "stock",
               "--address", f"tcp://127.0.0.1:{st.listen_port}")  # fmt: skip
            ok(home, "folder", "add", str(ours), "--id", "mixed", "--share", st.device_id)
            st.add_device(me, "p2p-node", my_address)
            st.add_folder("mixed", theirs, [me])

            wait_for(
                lambda: tree(ours) == tree(theirs) and len(tree(ours)) == 7,
                90,
                "both trees to converge",
            )
            wait_for(lambda: in_sync(st, "mixed", me), 30, "Syncthing: p2psync at 100%")

            # Changes after the first sync travel too, both ways.
            (theirs / "from-syncthing.txt").write_text("edited on Syncthing\n")
            st.post("/rest/db/scan?folder=mixed", None)
            (ours / "empty.txt").unlink()
            ok(home, "scan", "mixed")
            wait_for(
                lambda: (
                    (ours / "from-syncthing.txt").read_text() == "edited on Syncthing\n"
                    and not (theirs / "empty.txt").exists()
                ),
                60,
                "the edit and the deletion to cross",
            )
            wait_for(lambda: tree(ours) == tree(theirs), 30, "both trees to converge again")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=20)
