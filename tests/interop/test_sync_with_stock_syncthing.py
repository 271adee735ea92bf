"""A `p2psync run` daemon and a stock Syncthing share a folder, set up the way a user
would: the CLI on our side, Syncthing's REST API (what its web GUI calls) on the other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stock_syncthing import StockSyncthing, needs_syncthing, stock_syncthing, wait_for
from test_cli_cluster import start, status
from test_cli_daemon import init_home, ok

from p2psync.identity import generate_identity, save_identity

pytestmark = needs_syncthing

INTERNAL = (".p2p", ".stfolder", ".syncthing.", ".stversions")


def entries(root: Path) -> list[Path]:
    """Every path under ``root``; walked again if a directory vanishes mid-walk."""
    for _ in range(10):
        try:
            return sorted(root.rglob("*"))
        except FileNotFoundError:
            continue
    raise AssertionError(f"{root} keeps changing under the walk")


def tree(root: Path) -> dict[str, bytes | None]:
    """Every user file and directory under ``root`` (directories map to None). An entry
    that a daemon renames or removes during the walk is left out: callers poll."""
    out: dict[str, bytes | None] = {}
    for path in entries(root):
        rel = path.relative_to(root)
        if any(part.startswith(INTERNAL) for part in rel.parts):
            continue
        try:
            out[rel.as_posix()] = path.read_bytes() if path.is_file() else None
        except FileNotFoundError:
            continue
    return out


def described(root: Path) -> dict[str, tuple[object, ...]]:
    """Each user entry under ``root`` as (kind, content or target, permission bits, mtime
    for files): what both sides must agree on after a sync."""
    out: dict[str, tuple[object, ...]] = {}
    for path in entries(root):
        rel = path.relative_to(root)
        if any(part.startswith(INTERNAL) for part in rel.parts):
            continue
        try:
            st = path.lstat()
            if path.is_symlink():
                out[rel.as_posix()] = ("symlink", os.readlink(path))
            elif path.is_dir():
                out[rel.as_posix()] = ("dir", st.st_mode & 0o777)
            else:
                content = path.read_bytes()
                out[rel.as_posix()] = ("file", content, st.st_mode & 0o777, st.st_mtime_ns)
        except FileNotFoundError:  # renamed or removed by a daemon meanwhile: callers poll
            continue
    return out


def in_sync(st: StockSyncthing, folder: str, device: str) -> bool:
    completion = st.get(f"/rest/db/completion?folder={folder}&device={device}")
    return completion["completion"] == 100 and completion["needItems"] == 0


@dataclass
class MixedPair:
    home: Path  # the p2psync node's home
    ours: Path  # its copy of the folder
    theirs: Path  # Syncthing's copy
    st: StockSyncthing
    me: str  # the p2psync device ID
    daemon: subprocess.Popen[bytes]  # the running `p2psync run` (a test may restart it)

    def converged(self) -> bool:
        return tree(self.ours) == tree(self.theirs)


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[MixedPair]:
    """A p2psync daemon set up with the CLI and a Syncthing set up through its REST API,
    sharing folder "mixed"; each side starts with its own files."""
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
        pair: MixedPair | None = None
        try:
            system = status(home)["system"]
            me, my_address = system["device_id"], system["listen_addresses"][0]
            ok(home, "peer", "add", st.device_id, "--name", "stock",
               "--address", f"tcp://127.0.0.1:{st.listen_port}")  # fmt: skip
            ok(home, "folder", "add", str(ours), "--id", "mixed", "--share", st.device_id)
            st.add_device(me, "p2p-node", my_address)
            st.add_folder("mixed", theirs, [me])
            pair = MixedPair(home, ours, theirs, st, me, daemon)
            wait_for(
                lambda: pair.converged() and len(tree(ours)) == 7, 90, "both trees to converge"
            )
            wait_for(lambda: in_sync(st, "mixed", me), 30, "Syncthing: p2psync at 100%")
            yield pair
        finally:
            for running in {daemon, *([pair.daemon] if pair else [])}:
                running.send_signal(signal.SIGTERM)
                running.wait(timeout=20)


def test_a_p2psync_daemon_and_stock_syncthing_sync_both_ways(mixed: MixedPair) -> None:
    """The first sync is the fixture's; changes after it travel too, both ways."""
    (device,) = status(mixed.home)["devices"]
    assert device["protocol"] == "bep/1.0" and device["client"].startswith("syncthing v1.")
    assert "bep/1.0, syncthing v1." in ok(mixed.home, "status")
    (mixed.theirs / "from-syncthing.txt").write_text("edited on Syncthing\n")
    mixed.st.post("/rest/db/scan?folder=mixed", None)
    (mixed.ours / "empty.txt").unlink()
    ok(mixed.home, "scan", "mixed")
    wait_for(
        lambda: (
            (mixed.ours / "from-syncthing.txt").read_text() == "edited on Syncthing\n"
            and not (mixed.theirs / "empty.txt").exists()
        ),
        60,
        "the edit and the deletion to cross",
    )
    wait_for(mixed.converged, 30, "both trees to converge again")


def test_a_concurrent_edit_ends_with_the_same_winner_and_copy_on_both_sides(
    mixed: MixedPair,
) -> None:
    mixed.st.post(f"/rest/system/pause?device={mixed.me}", None)
    wait_for(
        lambda: (
            not mixed.st.get("/rest/system/connections")["connections"]
            .get(mixed.me, {})
            .get("connected")
        ),
        20,
        "Syncthing to drop the paused device",
    )
    (mixed.ours / "from-p2psync.txt").write_text("edited on p2psync while apart\n")
    ok(mixed.home, "scan", "mixed")
    (mixed.theirs / "from-p2psync.txt").write_text("edited on Syncthing while apart\n")
    mixed.st.post("/rest/db/scan?folder=mixed", None)
    wait_for(
        lambda: (
            mixed.st.get("/rest/db/file?folder=mixed&file=from-p2psync.txt")["local"]["size"]
            == len("edited on Syncthing while apart\n")
        ),
        20,
        "Syncthing's scan of its edit",
    )
    mixed.st.post(f"/rest/system/resume?device={mixed.me}", None)

    def both_kept() -> bool:
        copies = [n for n in tree(mixed.ours) if ".sync-conflict-" in n]
        return mixed.converged() and len(copies) == 1

    wait_for(both_kept, 60, "one conflict copy, the same on both sides")
    files = tree(mixed.ours)
    (copy,) = (n for n in files if ".sync-conflict-" in n)
    assert copy.startswith("from-p2psync.sync-conflict-") and copy.endswith(".txt")
    assert {files["from-p2psync.txt"], files[copy]} == {
        b"edited on p2psync while apart\n",
        b"edited on Syncthing while apart\n",
    }


def test_an_old_identity_gets_a_hint_and_the_documented_fix_works(tmp_path: Path) -> None:
    """Identities made before 0.1 are named 'p2psync': Syncthing drops them after the
    Hellos; the daemon says what to set there, and setting it makes them sync."""
    home, ours, theirs = tmp_path / "p2p-home", tmp_path / "p2p-data", tmp_path / "st-data"
    ours.mkdir()
    theirs.mkdir()
    (theirs / "hello.txt").write_text("from Syncthing\n")
    init_home(home, "old-node")
    save_identity(generate_identity(common_name="p2psync"), home)
    with stock_syncthing(tmp_path / "st-home", name="stock") as st:
        daemon = start(home)
        try:
            system = status(home)["system"]
            me, my_address = system["device_id"], system["listen_addresses"][0]
            ok(home, "peer", "add", st.device_id, "--name", "stock",
               "--address", f"tcp://127.0.0.1:{st.listen_port}")  # fmt: skip
            ok(home, "folder", "add", str(ours), "--id", "mixed", "--share", st.device_id)
            st.add_device(me, "old-node", my_address)
            st.add_folder("mixed", theirs, [me])
            log_file = Path(ok(home, "log").strip())
            wait_for(
                lambda: "set this device's Certificate Name" in log_file.read_text(),
                60,
                "the certificate-name hint in the daemon's log",
            )
            assert "'p2psync'" in log_file.read_text()
            device = st.get(f"/rest/config/devices/{me}")
            st.client.put(
                f"/rest/config/devices/{me}", json={**device, "certName": "p2psync"}
            ).raise_for_status()
            wait_for(
                lambda: (
                    (ours / "hello.txt").exists()
                    and (ours / "hello.txt").read_text() == "from Syncthing\n"
                ),
                60,
                "the file to arrive once Syncthing expects the old name",
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=20)


def test_a_name_only_syncthing_can_store_is_listed_not_synced_and_the_link_stays(
    mixed: MixedPair,
) -> None:
    """A backslash is an ordinary character in a Linux name for Syncthing; p2psync
    refuses such names. The entry is shown as not synced here; the connection stays up
    and the rest keeps syncing."""
    (before,) = status(mixed.home)["devices"]
    (mixed.theirs / "back\\slash.txt").write_text("Syncthing can hold this name\n")
    (mixed.theirs / "plain.txt").write_text("and this one travels\n")
    mixed.st.post("/rest/db/scan?folder=mixed", None)
    wait_for(lambda: (mixed.ours / "plain.txt").exists(), 30, "the ordinary file to arrive")

    def listed() -> dict[str, str]:
        (folder,) = status(mixed.home)["folders"]
        return {item["name"]: item["error"] for item in folder["not_synced"]}

    reasons = wait_for(listed, 30, "the refused name in status")
    assert list(reasons) == ["back\\slash.txt"] and "backslash" in reasons["back\\slash.txt"]
    assert not (mixed.ours / "back\\slash.txt").exists()
    (after,) = status(mixed.home)["devices"]
    assert after["connected"] and after["connected_for"] > before["connected_for"]
    assert "not synced here" in ok(mixed.home, "status")


def test_symlinks_permissions_mtimes_and_renames_cross_both_ways(mixed: MixedPair) -> None:
    # On Syncthing's side: a symlink, a permission change, an mtime-only change, a
    # directory rename.
    (mixed.theirs / "link-to-note").symlink_to("from-syncthing.txt")
    (mixed.theirs / "photos" / "img.raw").chmod(0o600)
    os.utime(mixed.theirs / "from-syncthing.txt", ns=(1_600_000_000_000_000_000,) * 2)
    (mixed.theirs / "photos").rename(mixed.theirs / "pictures")
    mixed.st.post("/rest/db/scan?folder=mixed", None)
    # On ours: a symlink to a directory, a permission change, a file rename.
    (mixed.ours / "docs-link").symlink_to("docs")
    (mixed.ours / "docs" / "multi-block.bin").chmod(0o640)
    (mixed.ours / "from-p2psync.txt").rename(mixed.ours / "renamed.txt")
    ok(mixed.home, "scan", "mixed")

    def agreed() -> bool:
        ours = described(mixed.ours)
        return ours == described(mixed.theirs) and {
            "link-to-note",
            "docs-link",
            "pictures/img.raw",
            "renamed.txt",
        } <= set(ours)

    wait_for(agreed, 60, "every change to cross")
    ours = described(mixed.ours)
    assert ours["link-to-note"] == ("symlink", "from-syncthing.txt")
    assert ours["docs-link"] == ("symlink", "docs")
    assert ours["pictures/img.raw"][2] == 0o600
    assert ours["docs/multi-block.bin"][2] == 0o640
    assert ours["from-syncthing.txt"][3] == 1_600_000_000_000_000_000
    assert "photos" not in ours and "from-p2psync.txt" not in ours
    wait_for(lambda: in_sync(mixed.st, "mixed", mixed.me), 30, "Syncthing: p2psync at 100%")


def index_updates(home: Path, since: int = 0) -> list[dict]:
    out = ok(home, "events", "--json", "--types", "RemoteIndexUpdated", "--since", str(since))
    return json.loads(out)


def disconnect_while(mixed: MixedPair, change: Callable[[], None]) -> None:
    """Pause the p2psync device on the Syncthing side, make ``change``, resume."""
    mixed.st.post(f"/rest/system/pause?device={mixed.me}", None)
    wait_for(lambda: not status(mixed.home)["devices"][0]["connected"], 20, "the link to drop")
    change()
    mixed.st.post(f"/rest/system/resume?device={mixed.me}", None)


def test_a_reconnect_sends_only_what_changed(mixed: MixedPair) -> None:
    seen = max((e["id"] for e in index_updates(mixed.home)), default=0)

    def edit_on_syncthing() -> None:
        (mixed.theirs / "from-syncthing.txt").write_text("changed while apart\n")
        mixed.st.post("/rest/db/scan?folder=mixed", None)
        wait_for(
            lambda: (
                mixed.st.get("/rest/db/status?folder=mixed")["state"] == "idle"
                and mixed.st.get("/rest/db/file?folder=mixed&file=from-syncthing.txt")["local"][
                    "size"
                ]
                == len("changed while apart\n")
            ),
            20,
            "Syncthing's scan",
        )

    disconnect_while(mixed, edit_on_syncthing)
    wait_for(
        lambda: (mixed.ours / "from-syncthing.txt").read_text() == "changed while apart\n",
        60,
        "the change to arrive after the reconnect",
    )
    after = [e for e in index_updates(mixed.home, seen) if e["data"]["items"]]
    assert [e["data"]["items"] for e in after] == [1]  # one entry, not the whole index


def test_a_wiped_p2psync_index_resyncs_without_conflicts_or_losses(mixed: MixedPair) -> None:
    before = tree(mixed.ours)
    mixed.daemon.terminate()
    mixed.daemon.wait(timeout=20)
    for path in mixed.home.glob("index.sqlite3*"):
        path.unlink()
    mixed.daemon = start(mixed.home)
    wait_for(lambda: in_sync(mixed.st, "mixed", mixed.me), 60, "Syncthing: p2psync at 100%")
    wait_for(lambda: status(mixed.home)["folders"][0]["need_items"] == 0, 30, "p2psync idle")
    assert tree(mixed.ours) == before == tree(mixed.theirs)
    assert not any(".sync-conflict-" in n for n in tree(mixed.theirs))


def test_a_big_file_seeded_on_both_sides_is_no_conflict(mixed: MixedPair) -> None:
    """A folder seeded on both devices before they sync (how big folders are set up):
    files from 0 bytes to past 1 GiB get the same block size on both sides (256 KiB for
    260 MiB, 1 MiB for 1.1 GiB), so the two independent scans agree and nothing becomes
    a conflict copy. The 1.1 GiB file is sparse (zeros): cheap to write and read, and
    its block list still differs if either side picks another block size."""
    chunk = os.urandom(1024 * 1024)
    for root in (mixed.ours, mixed.theirs):
        with open(root / "video.mov", "wb") as f:
            for i in range(260):
                f.write(chunk[i:] + chunk[:i])
        with open(root / "disk.img", "wb") as f:
            f.truncate(1100 * 1024 * 1024)
        (root / "empty.txt").write_bytes(b"")
        (root / "small.txt").write_bytes(b"seeded on both sides\n")
    ok(mixed.home, "scan", "mixed")
    mixed.st.post("/rest/db/scan?folder=mixed", None, timeout=120)  # 1.4 GiB to hash
    wait_for(lambda: in_sync(mixed.st, "mixed", mixed.me), 120, "Syncthing: p2psync at 100%")
    wait_for(lambda: status(mixed.home)["folders"][0]["need_items"] == 0, 60, "p2psync idle")
    names = [*tree(mixed.ours), *tree(mixed.theirs)]
    assert not [n for n in names if ".sync-conflict-" in n]
    assert (mixed.ours / "video.mov").stat().st_size == 260 * 1024 * 1024
    assert (mixed.ours / "disk.img").stat().st_size == 1100 * 1024 * 1024
