"""Threads: readers during writes, group commit, job isolation, trio worker threads."""

from __future__ import annotations

import threading
import time

import pytest
import trio
from index_helpers import DEV_A, LOCAL, make_file

from p2psync.errors import IndexError_, UsageError
from p2psync.index import IndexStore

BATCH = 200


def test_readers_see_whole_transactions_while_writing(store: IndexStore) -> None:
    done = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def writer() -> None:
        try:
            for b in range(10):
                store.update_local("f", [make_file(f"b{b:02d}/{i:03d}") for i in range(BATCH)])
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                counts = store.counts("f")
                assert counts.files % BATCH == 0  # never half a transaction
                assert store.max_sequence("f", LOCAL) % BATCH == 0
                seqs = [fi.sequence for batch in store.iter_local_since("f", 0, 97) for fi in batch]
                assert seqs == sorted(set(seqs))
                for fi in store.iter_need("f"):
                    raise AssertionError(f"nothing is needed, got {fi.name}")
                reads[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert reads[0] > 0
    assert store.counts("f").files == 10 * BATCH


def _block_writer(store: IndexStore) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Occupy the writer thread until ``release`` is set."""
    entered, release = threading.Event(), threading.Event()

    def job(conn: object) -> None:
        entered.set()
        release.wait(30)

    t = threading.Thread(target=store._write, args=(job,))
    t.start()
    assert entered.wait(30)
    return entered, release, t


def _wait_queued(store: IndexStore, n: int) -> None:
    deadline = time.monotonic() + 30
    while store._writer._queue.qsize() < n:
        assert time.monotonic() < deadline, "jobs never queued"
        time.sleep(0.001)


def test_queued_calls_commit_together_and_fail_alone(store: IndexStore) -> None:
    _entered, release, blocker = _block_writer(store)
    before = store.statistics()
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            if i == 3:
                store.update_remote("f", LOCAL, [make_file("bad")])  # refused
            else:
                results[i] = store.update_local("f", [make_file(f"n{i}")])
        except UsageError as exc:
            results[i] = exc

    callers = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in callers:
        t.start()
    _wait_queued(store, 8)
    release.set()
    for t in [blocker, *callers]:
        t.join(30)
    after = store.statistics()
    assert after["jobs"] - before["jobs"] == 9
    assert after["transactions"] - before["transactions"] <= 2  # the blocker's + one group
    assert isinstance(results[3], UsageError)
    sequences = sorted(r[0].sequence for i, r in results.items() if i != 3)
    assert sequences == list(range(1, 8))
    assert store.get_local("f", "bad") is None
    assert len(list(store.iter_local("f"))) == 7


def test_a_failing_job_rolls_back_alone(store: IndexStore) -> None:
    store.update_local("f", [make_file("kept")])

    def failing(conn) -> None:
        store._mutations.folder_id(conn, "ghost")  # created and cached, then rolled back
        conn.execute("INSERT INTO folders (name) VALUES ('f')")  # violates UNIQUE

    with pytest.raises(IndexError_, match="UNIQUE"):
        store._write(failing)
    assert store.folders() == ["f"]
    # The writer survived, its id cache was dropped with the rollback, the state is intact.
    assert store.update_local("ghost", [make_file("g")])[0].sequence == 1
    assert store.get_local("f", "kept") is not None
    assert store.update_local("f", [make_file("next")])[0].sequence == 2


def test_notes_submitted_without_waiting_are_readable_once_their_future_is_done(
    store: IndexStore,
) -> None:
    release = threading.Event()
    store._writer.submit(lambda conn: release.wait(10))  # the writer is busy
    pending = store.note_applying_soon("f", [make_file("a"), make_file("b")])
    assert not pending.done() and store.applying("f") == []  # queued, not committed
    release.set()
    assert pending.result(timeout=10) is None
    assert [fi.name for fi in store.applying("f")] == ["a", "b"]
    assert store.note_applying_soon("f", []).done()  # nothing to note: done at once


def test_a_submitted_job_that_fails_raises_from_its_future(store: IndexStore) -> None:
    future = store._writer.submit(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"))
    with pytest.raises(IndexError_, match="nowhere"):
        future.result(timeout=10)
    store.update_local("f", [make_file("after")])  # the writer goes on
    assert store.get_local("f", "after") is not None


async def test_trio_threads_stream_across_worker_threads(store: IndexStore) -> None:
    limiter = trio.CapacityLimiter(2)
    await trio.to_thread.run_sync(
        store.update_remote,
        "f",
        DEV_A,
        [make_file(f"n{i:04d}", ((2, 1),), sequence=i + 1) for i in range(1200)],
        limiter=limiter,
    )
    it = store.iter_need("f", batch_size=50)
    names = []
    with trio.fail_after(30):
        while (fi := await trio.to_thread.run_sync(next, it, None, limiter=limiter)) is not None:
            names.append(fi.name)
            if len(names) % 100 == 0:  # writes interleaved with the stream
                await trio.to_thread.run_sync(store.update_local, "f", [fi], limiter=limiter)
    assert names == [f"n{i:04d}" for i in range(1200)]
    need_left = await trio.to_thread.run_sync(store.need_counts, "f", limiter=limiter)
    assert need_left.files == 1200 - 12
