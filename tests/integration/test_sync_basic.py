"""Two and three in-process nodes on loopback keep a folder identical."""

import os

from nodes import running_cluster, tree_digest, wait_for


async def test_two_nodes_sync_a_new_file(tmp_path) -> None:
    async with running_cluster(tmp_path, ["a", "b"]) as c:
        await wait_for(lambda: c.connected("a", "b") and c.connected("b", "a"), what="connection")
        (c.data("a") / "hello.txt").write_text("hello world")
        os.makedirs(c.data("a") / "sub" / "deeper")
        (c.data("a") / "sub" / "deeper" / "f.bin").write_bytes(os.urandom(300_000))
        c.scan("a")
        await wait_for(
            lambda: (c.data("b") / "hello.txt").exists() and c.in_sync(), what="sync a->b"
        )
        assert (c.data("b") / "hello.txt").read_text() == "hello world"
        # and back
        (c.data("b") / "hello.txt").write_text("changed on b")
        c.scan("b")
        await wait_for(
            lambda: (c.data("a") / "hello.txt").read_text() == "changed on b", what="sync b->a"
        )
        assert tree_digest(c.data("a")) == tree_digest(c.data("b"))


async def test_delete_rename_and_copy_move_no_data(tmp_path) -> None:
    async with running_cluster(tmp_path, ["a", "b"]) as c:
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        d = c.data("a") / "dir"
        d.mkdir()
        payload = os.urandom(1_000_000)
        (d / "big.bin").write_bytes(payload)
        (c.data("a") / "gone.txt").write_text("bye")
        c.scan("a")
        await wait_for(
            lambda: (c.data("b") / "dir" / "big.bin").exists() and c.in_sync(), what="initial sync"
        )
        fetched = c.runner("b").puller.stats.blocks_network
        assert fetched > 0
        # rename + copy + delete: the receiver reuses local blocks, fetches nothing
        os.rename(d / "big.bin", c.data("a") / "moved.bin")
        (c.data("a") / "copy.bin").write_bytes(payload)
        (c.data("a") / "gone.txt").unlink()
        c.scan("a")
        await wait_for(
            lambda: (
                c.in_sync()
                and (c.data("b") / "moved.bin").exists()
                and not (c.data("b") / "gone.txt").exists()
            ),
            what="rename/copy/delete",
        )
        assert c.runner("b").puller.stats.blocks_network == fetched
        assert (c.data("b") / "copy.bin").read_bytes() == payload


async def test_three_nodes_converge(tmp_path) -> None:
    async with running_cluster(tmp_path, ["a", "b", "c"]) as c:
        for x, y in [("a", "b"), ("a", "c"), ("b", "c")]:
            await wait_for(lambda x=x, y=y: c.connected(x, y), what=f"{x}-{y} connection")
        for n in ["a", "b", "c"]:
            (c.data(n) / f"from-{n}.txt").write_text(n * 100)
            c.scan(n)
        await wait_for(
            lambda: c.in_sync() and len(tree_digest(c.data("a"))) == 3, what="3-way sync"
        )


async def test_watcher_picks_up_changes_without_a_scan_request(tmp_path) -> None:
    async with running_cluster(tmp_path, ["a", "b"], watcher=True) as c:
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        await wait_for(lambda: c.runner("a").status.state == "idle", what="a idle")
        (c.data("a") / "watched.txt").write_text("seen by the watcher")
        await wait_for(
            lambda: (c.data("b") / "watched.txt").exists(), timeout=20, what="watcher-driven sync"
        )
        (c.data("b") / "watched.txt").unlink()
        await wait_for(
            lambda: not (c.data("a") / "watched.txt").exists(),
            timeout=20,
            what="watcher-driven delete",
        )
