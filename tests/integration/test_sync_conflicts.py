"""Concurrent changes while partitioned: same winner everywhere, nothing lost."""

from pathlib import Path

import trio
from nodes import Cluster, tree_digest, wait_for


def conflict_copies(root: Path) -> list[str]:
    return sorted(n for n in tree_digest(root) if ".sync-conflict-" in n)


async def test_concurrent_edit_gives_same_winner_and_conflict_copy(tmp_path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        (c.data("a") / "doc.txt").write_text("base")
        c.scan("a")
        await wait_for(lambda: (c.data("b") / "doc.txt").exists(), what="initial sync")
        await c.stop("b")
        (c.data("a") / "doc.txt").write_text("edit on a")
        (c.data("b") / "doc.txt").write_text("edit on b, longer")
        c.scan("a")
        await wait_for(lambda: c.runner("a").status.state == "idle", what="a scanned")
        await c.start(nursery, "b")
        await wait_for(lambda: c.connected("a", "b"), what="reconnect")
        # the loser's device makes the copy and scans it in (a moment later), then the
        # other device pulls it: wait for both disks, not only for nothing being needed
        await wait_for(
            lambda: (
                c.in_sync()
                and conflict_copies(c.data("a"))
                and conflict_copies(c.data("a")) == conflict_copies(c.data("b"))
            ),
            what="conflict resolved on both devices",
        )
        contents = {(c.data("a") / n).read_text() for n in tree_digest(c.data("a"))}
        assert contents == {"edit on a", "edit on b, longer"}
        assert len(conflict_copies(c.data("a"))) == 1
        nursery.cancel_scope.cancel()


async def test_edit_beats_concurrent_delete(tmp_path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        (c.data("a") / "keep.txt").write_text("v1")
        c.scan("a")
        await wait_for(lambda: (c.data("b") / "keep.txt").exists(), what="initial sync")
        await c.stop("b")
        (c.data("a") / "keep.txt").unlink()
        c.scan("a")
        (c.data("b") / "keep.txt").write_text("v2 edited on b")
        await wait_for(lambda: c.runner("a").status.state == "idle", what="a scanned")
        await c.start(nursery, "b")
        await wait_for(
            lambda: (c.data("a") / "keep.txt").exists() and c.in_sync(), what="edit survives"
        )
        assert (c.data("a") / "keep.txt").read_text() == "v2 edited on b"
        nursery.cancel_scope.cancel()


async def test_preexisting_different_files_on_first_share(tmp_path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    (c.data("a") / "same-name.txt").write_text("a's content")
    (c.data("b") / "same-name.txt").write_text("b's different content")
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        await wait_for(
            lambda: c.in_sync() and conflict_copies(c.data("a")), what="conflict on first share"
        )
        contents = {(c.data("a") / n).read_text() for n in tree_digest(c.data("a"))}
        assert contents == {"a's content", "b's different content"}
        nursery.cancel_scope.cancel()
