"""A node's home and folders meeting a user's mistakes (issue 18.1-3): a second node on
a running home, a folder emptied or its marker lost and recreated, a small folder
losing most of its files on a peer.

Expected: the second node is refused before it opens anything; a folder that comes
back empty, or whose marker comes back with files missing, pulls the cluster's state
and never sends a deletion; a large relative delete waits for confirmation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio
from nodes import Cluster, tree_digest, wait_for

from p2psync.errors import DaemonRunningError
from p2psync.wiring import serve_node

FILES = {f"doc{i:02}.txt": f"document {i}\n" * 50 for i in range(12)}


async def synced_pair(tmp_path: Path, nursery: trio.Nursery) -> Cluster:
    c = Cluster(tmp_path, ["a", "b"])
    await c.start_all(nursery)
    for name, text in FILES.items():
        (c.data("a") / name).write_text(text)
    c.scan("a")
    await wait_for(lambda: len(tree_digest(c.data("b"))) == 12 and c.in_sync(), what="sync")
    return c


def settled(c: Cluster, name: str) -> bool:
    return c.runner(name).status.state == "idle" and c.in_sync()


async def test_second_node_on_a_running_home_is_refused(tmp_path: Path, outcomes) -> None:
    async with trio.open_nursery() as nursery:
        c = await synced_pair(tmp_path, nursery)
        with pytest.raises(DaemonRunningError):
            await serve_node(c.homes["b"])
        (c.data("a") / "after.txt").write_text("after")
        c.scan("a")
        await wait_for(lambda: (c.data("b") / "after.txt").exists(), what="b still syncs")
        outcomes.record("process", "second node started on a running home", "refused")
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "how", ["emptied while stopped", "emptied, marker recreated", "marker lost, half the files"]
)
async def test_folder_that_comes_back_pulls_and_deletes_nothing(
    tmp_path: Path, outcomes, how: str
) -> None:
    async with trio.open_nursery() as nursery:
        c = await synced_pair(tmp_path, nursery)
        b = c.data("b")
        if how == "marker lost, half the files":
            shutil.rmtree(b / ".p2psync")
            for i in range(6):
                (b / f"doc{i:02}.txt").unlink()
            c.scan("b")
            await wait_for(lambda: "marker" in c.runner("b").status.reason, what="marker error")
            (b / ".p2psync").mkdir()
            c.scan("b")
        else:
            await c.stop("b")
            for name in FILES:
                (b / name).unlink()
            if how == "emptied, marker recreated":
                shutil.rmtree(b / ".p2psync")
                (b / ".p2psync").mkdir()
            await c.start(nursery, "b")
        await wait_for(
            lambda: settled(c, "b") and len(tree_digest(c.data("a"))) == 12, what="b pulled back"
        )
        assert tree_digest(c.data("a")) == tree_digest(b)
        outcomes.record("disk", f"folder {how}", "pulled back, nothing deleted elsewhere")
        nursery.cancel_scope.cancel()


async def test_small_folder_losing_most_files_is_held(tmp_path: Path, outcomes) -> None:
    async with trio.open_nursery() as nursery:
        c = await synced_pair(tmp_path, nursery)
        for i in range(10):
            (c.data("a") / f"doc{i:02}.txt").unlink()
        c.scan("a")
        await wait_for(lambda: c.runner("b").status.state == "paused", what="b holds")
        assert len(tree_digest(c.data("b"))) == 12
        c.runner("b").confirm_deletes()
        await wait_for(lambda: len(tree_digest(c.data("b"))) == 2, what="confirmed deletes")
        outcomes.record("peer", "deletes 10 of a 12-file folder", "paused until confirmed")
        nursery.cancel_scope.cancel()


async def test_folder_moved_with_its_path_changed_goes_on(tmp_path: Path, outcomes) -> None:
    from dataclasses import replace

    from nodes import FOLDER

    from p2psync.config import save_config

    async with trio.open_nursery() as nursery:
        c = await synced_pair(tmp_path, nursery)
        node = c.nodes["b"]
        moved = tmp_path / "b" / "moved"
        c.data("b").rename(moved)  # marker and all
        fc = node.config.folder(FOLDER)
        cfg = node.config.with_folder(replace(fc, path=str(moved)))
        save_config(cfg, c.homes["b"])
        await node.apply_config(cfg)
        (c.data("a") / "new.txt").write_text("new")
        c.scan("a")
        await wait_for(lambda: (moved / "new.txt").exists(), what="b syncs at the new path")
        c.scan("b")
        await wait_for(lambda: c.runner("b").status.state == "idle", what="b idle")
        assert tree_digest(moved) == tree_digest(c.data("a"))  # no conflict copies, no loss
        outcomes.record("disk", "folder moved, path changed in the config", "went on, no conflicts")
        nursery.cancel_scope.cancel()
