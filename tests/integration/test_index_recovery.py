"""A corrupt or missing index database is set aside and rebuilt from disk and peers."""

import os

import trio
from nodes import Cluster, tree_digest, wait_for


async def test_corrupt_index_is_set_aside_and_rebuilt(tmp_path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        for i in range(20):
            (c.data("a") / f"f{i}.txt").write_text(f"content {i}")
        c.scan("a")
        await wait_for(
            lambda: c.in_sync() and len(tree_digest(c.data("b"))) == 20, what="initial sync"
        )
        await c.stop("b")
        db = c.homes["b"] / "index.sqlite3"
        for suffix in ("-wal", "-shm"):
            extra = db.with_name(db.name + suffix)
            if extra.exists():
                extra.unlink()
        db.write_bytes(os.urandom(4096))  # garbage where the database was
        before = tree_digest(c.data("b"))
        await c.start(nursery, "b")
        assert any(p.name.startswith("index.sqlite3.corrupt-") for p in c.homes["b"].iterdir())
        await wait_for(lambda: c.connected("a", "b"), what="reconnect")
        c.scan("b")
        await wait_for(
            lambda: c.runner("b").status.state == "idle" and c.runner("a").status.state == "idle",
            what="idle after rebuild",
        )
        (c.data("a") / "after.txt").write_text("new")
        c.scan("a")
        await wait_for(
            lambda: (c.data("b") / "after.txt").exists() and c.in_sync(), what="sync after rebuild"
        )
        after = tree_digest(c.data("b"))
        assert {k: v for k, v in after.items() if k != "after.txt"} == before
        assert not [n for n in after if ".sync-conflict-" in n]
        nursery.cancel_scope.cancel()
