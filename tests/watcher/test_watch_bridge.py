"""The trio side of the watcher: batching in virtual time, and the thread → trio bridge."""

from __future__ import annotations

import os
import threading

import pytest
import trio
import trio.testing
from watchdog.events import (
    DirModifiedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from p2psync.watcher.aggregate import Aggregator, Batch
from p2psync.watcher.in_process import BridgeItem, EventBridge, aggregate_changes, names_for_event

ROOT = os.path.abspath(os.sep + "srv" + os.sep + "folder")


def p(*parts: str) -> str:
    return os.path.join(ROOT, *parts)


def test_names_for_event() -> None:
    assert names_for_event(ROOT, FileCreatedEvent(p("a.txt"))) == ("a.txt",)
    assert names_for_event(ROOT, FileMovedEvent(p("a"), p("d", "b"))) == ("a", "d/b")
    # puller's rename of its temp file onto the real name: only the real name counts
    assert names_for_event(ROOT, FileMovedEvent(p(".p2psync.b.tmp"), p("b"))) == ("b",)
    # moved out of the folder: only the side inside it
    assert names_for_event(ROOT, FileMovedEvent(p("a"), "/elsewhere/a")) == ("a",)
    assert names_for_event(ROOT, FileCreatedEvent(p(".p2pversions", "x"))) == ()
    assert names_for_event(ROOT, FileCreatedEvent(p(".p2pignore"))) == (".p2pignore",)
    # reads and parent-directory echoes carry no change of their own
    assert names_for_event(ROOT, FileOpenedEvent(p("a"))) == ()
    assert names_for_event(ROOT, FileClosedNoWriteEvent(p("a"))) == ()
    assert names_for_event(ROOT, DirModifiedEvent(p("d"))) == ()
    # the root itself going away needs a full rescan
    assert names_for_event(ROOT, FileDeletedEvent(ROOT)) is None


async def test_batches_follow_quiet_period_and_max_delay(autojump_clock: trio.abc.Clock) -> None:
    send, receive = trio.open_memory_channel[BridgeItem](100)
    out_send, out = trio.open_memory_channel[Batch](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            aggregate_changes, receive, out_send, Aggregator(delay=0.1, max_delay=1.0)
        )
        start = trio.current_time()
        await send.send(("a",))
        await trio.sleep(0.05)  # virtual time: scripting the event times, not synchronising
        await send.send(("b",))
        assert await out.receive() == ["a", "b"]
        assert trio.current_time() - start == pytest.approx(0.15)

        # continuous writes every 50 ms: a batch still goes out after max_delay
        start = trio.current_time()
        received: list[tuple[float, Batch]] = []

        async def writer() -> None:
            for _ in range(50):  # 2.5 s of writes
                await send.send(("busy.log",))
                await trio.sleep(0.05)

        nursery.start_soon(writer)
        for _ in range(3):
            batch = await out.receive()
            received.append((trio.current_time() - start, batch))
        assert [b for _, b in received] == [["busy.log"]] * 3
        assert received[0][0] == pytest.approx(1.0)
        assert received[1][0] == pytest.approx(2.0, abs=0.06)
        assert received[2][0] == pytest.approx(2.55)  # quiet 0.1 s after the last write

        await send.send(None)  # the bridge's "rescan everything"
        assert await out.receive() is None
        nursery.cancel_scope.cancel()


async def test_nothing_is_emitted_without_events(autojump_clock: trio.abc.Clock) -> None:
    send, receive = trio.open_memory_channel[BridgeItem](1)
    out_send, out = trio.open_memory_channel[Batch](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(aggregate_changes, receive, out_send, Aggregator())
        with trio.move_on_after(3600):
            await out.receive()
            pytest.fail("a batch was emitted with no events")
        nursery.cancel_scope.cancel()


async def test_full_bridge_channel_turns_into_a_full_rescan() -> None:
    """A real foreign thread pushes more events than the channel holds; none blocks it."""
    bridge = EventBridge(ROOT, trio.lowlevel.current_trio_token(), capacity=4)
    pushed = threading.Event()

    def watchdog_thread() -> None:
        for i in range(50):
            bridge.dispatch(FileCreatedEvent(p(f"f{i}")))
        pushed.set()

    with trio.fail_after(5):
        # Nobody drains the channel while the thread runs: dispatch must not wait for it.
        await trio.to_thread.run_sync(watchdog_thread)
        assert pushed.is_set()
        await trio.testing.wait_all_tasks_blocked()  # the queued run_sync_soon callbacks ran
        out_send, out = trio.open_memory_channel[Batch](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                aggregate_changes, bridge.receive, out_send, Aggregator(), bridge.take_overflow
            )
            assert await out.receive() is None
            # after the full rescan, normal service resumes
            await trio.to_thread.run_sync(bridge.dispatch, FileCreatedEvent(p("later")))
            assert await out.receive() == ["later"]
            nursery.cancel_scope.cancel()
    bridge.close()


async def test_dispatch_after_close_is_harmless() -> None:
    bridge = EventBridge(ROOT, trio.lowlevel.current_trio_token(), capacity=1)
    bridge.close()
    await trio.to_thread.run_sync(bridge.dispatch, FileCreatedEvent(p("x")))
    await trio.testing.wait_all_tasks_blocked()
    assert not bridge.take_overflow()
