"""Clock skew through file times: mtimes far in the future or past, a newer write with an
older mtime, and equal mtimes on both sides of a conflict. Versions are ordered by
version vectors, not by mtimes, so the newer write always wins and nothing is dropped."""

from __future__ import annotations

import os

from nodes import running_cluster, tree_digest, wait_for

FUTURE_NS = 4_102_444_800 * 10**9  # 2100-01-01
PAST_NS = 86_400 * 10**9  # 1970-01-02


def write(path, text: str, mtime_ns: int | None = None) -> None:
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def conflicts(root) -> list[str]:
    return [n for n in tree_digest(root) if ".sync-conflict-" in n]


async def test_future_and_past_mtimes_do_not_beat_newer_writes(tmp_path, outcomes) -> None:
    async with running_cluster(tmp_path, ["a", "b"]) as c:
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        write(c.data("a") / "future.txt", "from a, dated 2100", FUTURE_NS)
        write(c.data("a") / "past.txt", "from a, dated 1970", PAST_NS)
        c.scan("a")
        await wait_for(
            lambda: c.in_sync() and (c.data("b") / "past.txt").exists(), what="first sync"
        )
        assert (c.data("b") / "future.txt").stat().st_mtime_ns == FUTURE_NS

        # b edits the 2100 file now (an older mtime): the edit is newer and must win everywhere
        write(c.data("b") / "future.txt", "b's later edit, dated today")
        # a edits the 1970 file, keeping a 1970 mtime: still a newer write
        write(c.data("a") / "past.txt", "a's later edit, still dated 1970", PAST_NS + 10**9)
        c.scan("b")
        c.scan("a")
        await wait_for(
            lambda: (
                (c.data("a") / "future.txt").read_text() == "b's later edit, dated today"
                and (c.data("b") / "past.txt").read_text() == "a's later edit, still dated 1970"
                and c.in_sync()
            ),
            what="newer writes win",
        )
        assert not conflicts(c.data("a")) and not conflicts(c.data("b"))
    outcomes.record(
        "clock",
        "mtime far in the future / past, then a newer write",
        "newer write wins, no conflict",
        trials=2,
    )


async def test_newer_write_with_older_mtime_on_the_same_device(tmp_path, outcomes) -> None:
    async with running_cluster(tmp_path, ["a", "b"]) as c:
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        f = c.data("a") / "doc.txt"
        write(f, "version 1")
        c.scan("a")
        await wait_for(lambda: (c.data("b") / "doc.txt").exists(), what="first sync")
        first = f.stat().st_mtime_ns
        write(f, "version 2", first - 3600 * 10**9)  # the clock stepped back an hour
        c.scan("a")
        await wait_for(
            lambda: (c.data("b") / "doc.txt").read_text() == "version 2", what="v2 reaches b"
        )
        assert f.read_text() == "version 2"
        assert not conflicts(c.data("a")) and not conflicts(c.data("b"))
    outcomes.record(
        "clock", "newer write with an mtime an hour older, same device", "newer write kept"
    )


async def test_equal_mtimes_on_both_sides_of_a_conflict(tmp_path, outcomes) -> None:
    async with running_cluster(tmp_path, ["a", "b"]) as c:
        await wait_for(lambda: c.connected("a", "b"), what="connection")
        write(c.data("a") / "same.txt", "original")
        c.scan("a")
        await wait_for(lambda: (c.data("b") / "same.txt").exists(), what="first sync")
        await c.stop("b")
        mtime = (c.data("a") / "same.txt").stat().st_mtime_ns + 5 * 10**9
        write(c.data("a") / "same.txt", "a's edit", mtime)
        write(c.data("b") / "same.txt", "b's edit", mtime)  # same mtime, same size
        c.scan("a")
        import trio

        async with trio.open_nursery() as nursery:
            await c.start(nursery, "b")
            await c.connect_all()
            c.scan("b")
            await wait_for(
                lambda: c.in_sync() and conflicts(c.data("a")), timeout=30, what="conflict resolved"
            )
            contents = {(c.data("a") / n).read_text() for n in tree_digest(c.data("a"))}
            assert {"a's edit", "b's edit"} <= contents, f"a version was dropped: {contents}"
            assert len(conflicts(c.data("a"))) == 1
            nursery.cancel_scope.cancel()
    outcomes.record(
        "clock",
        "equal mtimes on both sides of a conflict",
        "one winner everywhere, loser kept as copy",
    )
