"""Index database faults while the node is stopped (truncated, pages overwritten, deleted)
or at start (another process holds a write lock). Expected: a damaged database is set
aside and rebuilt from disk and peers with no conflict copies and no lost files; a
healthy but busy database is waited for, never thrown away."""

from __future__ import annotations

import pytest
import trio
from faults import DbLocker, corrupt_db, db_is_intact, drop_wal, truncate_db
from nodes import Cluster, tree_digest, wait_for

from p2psync.wiring import INDEX_FILE


def set_aside(home) -> list[str]:
    return [p.name for p in home.iterdir() if p.name.startswith(INDEX_FILE + ".corrupt-")]


async def synced_pair(c: Cluster, nursery) -> dict[str, str]:
    await c.start_all(nursery)
    await wait_for(lambda: c.connected("a", "b"), what="connection")
    for i in range(30):
        (c.data("a") / f"f{i}.txt").write_text(f"content {i}" * 50)
    (c.data("b") / "only-b.txt").write_text("b's own file")
    c.scan("a")
    c.scan("b")
    await wait_for(lambda: c.in_sync() and len(tree_digest(c.data("b"))) == 31, what="initial sync")
    return tree_digest(c.data("b"))


async def restart_and_check(c: Cluster, nursery, before: dict[str, str]) -> None:
    await c.start(nursery, "b")
    await wait_for(lambda: c.connected("a", "b"), what="reconnect")
    c.scan("b")
    await wait_for(
        lambda: c.runner("b").status.state == "idle" and c.runner("a").status.state == "idle",
        what="idle after restart",
    )
    (c.data("a") / "after.txt").write_text("new")
    (c.data("b") / "only-b.txt").write_text("b edits after the rebuild")
    c.scan("a")
    c.scan("b")
    await wait_for(
        lambda: (
            (c.data("b") / "after.txt").exists()
            and c.in_sync()
            and (c.data("a") / "only-b.txt").read_text() == "b edits after the rebuild"
        ),
        what="sync after the restart",
    )
    after = tree_digest(c.data("b"))
    assert set(before) <= set(after), f"lost: {set(before) - set(after)}"
    assert not [n for n in after if ".sync-conflict-" in n], "conflict copies after the rebuild"


@pytest.mark.parametrize("damage", ["truncate", "missing", "garbage-pages"])
async def test_damaged_index_is_set_aside_and_rebuilt(tmp_path, outcomes, damage: str) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        before = await synced_pair(c, nursery)
        await c.stop("b")
        home = c.homes["b"]
        await wait_for(lambda: db_is_intact(home), what="b's index closed")
        drop_wal(home)
        if damage == "truncate":
            truncate_db(home, 5000)  # mid-page: the schema survives, the tables do not
        elif damage == "missing":
            (home / INDEX_FILE).unlink()
        else:
            corrupt_db(home, seed=5, flips=4000)
        await restart_and_check(c, nursery, before)
        if damage != "missing":
            assert set_aside(home), "the damaged database was not kept for inspection"
        nursery.cancel_scope.cancel()
    outcomes.record(
        "database", f"index database {damage} while stopped", "set aside, rebuilt, nothing lost"
    )


async def test_locked_index_at_start_is_waited_for_not_discarded(tmp_path, outcomes) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        before = await synced_pair(c, nursery)
        await c.stop("b")
        home = c.homes["b"]
        await wait_for(lambda: db_is_intact(home), what="b's index closed")
        locker = await trio.to_thread.run_sync(DbLocker, home)
        try:
            async with trio.open_nursery() as inner:
                inner.start_soon(restart_and_check, c, nursery, before)
                await trio.sleep(1.5)  # the fault: the lock is held for 1.5 s into the start
                await trio.to_thread.run_sync(locker.release)
        finally:
            await trio.to_thread.run_sync(locker.release)
        assert not set_aside(home), "a healthy database that was only locked was thrown away"
        nursery.cancel_scope.cancel()
    outcomes.record(
        "database", "index locked by another process at start", "waited, reused, converged"
    )
