"""PeerConnection.request_many between two real connections over an in-memory stream:
every block gets its own outcome, budgets come back as answers arrive, and a lost
connection or the deadline ends the wait with a reason for what is missing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio.testing
from net_helpers import connected_pair

from p2psync.identity import DeviceID
from p2psync.net.peer import PeerConnection, RequestFailed
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import ClusterConfig, ErrorCode, Message, Request, Response

BLOCKS = {f"f{i}": b"%d" % i * (100 + i) for i in range(12)}


def wanted(*names: str) -> list[tuple[str, int, int, bytes]]:
    return [(n, 0, len(BLOCKS[n]), hashlib.sha256(BLOCKS[n]).digest()) for n in names]


class Server:
    """Answers from BLOCKS; refuses names it does not know; holds ``held`` until released."""

    def __init__(self, held: str = "") -> None:
        self.held = held
        self.release = trio.Event()
        self.reached = trio.Event()
        self.served: list[str] = []

    async def handle_message(self, peer: PeerConnection, message: Message) -> None:
        pass

    async def handle_requests(
        self, peer: PeerConnection, requests: list[Request]
    ) -> list[Response]:
        answers = []
        for request in requests:
            if request.name == self.held:
                self.reached.set()
                await self.release.wait()
            self.served.append(request.name)
            if request.name not in BLOCKS:
                answers.append(Response(id=request.id, code=ErrorCode.NO_SUCH_FILE))
            else:
                answers.append(Response(id=request.id, data=BLOCKS[request.name]))
        return answers


@asynccontextmanager
async def linked(
    server: Server, **options: object
) -> AsyncIterator[tuple[PeerConnection, PeerConnection]]:
    """(requester, server) connections, both running, over one in-memory stream pair."""
    ours, theirs = connected_pair()
    a_stream, b_stream = trio.testing.memory_stream_pair()
    requester = PeerConnection(a_stream, ours, DeviceID(bytes(32)), "memory", **options)  # type: ignore[arg-type]
    serving = PeerConnection(b_stream, theirs, DeviceID(bytes([1]) * 32), "memory")
    async with trio.open_nursery() as nursery:
        await nursery.start(requester.run, Server())
        await nursery.start(serving.run, server)
        await requester.send(ClusterConfig())
        await serving.send(ClusterConfig())
        yield requester, serving
        nursery.cancel_scope.cancel()


async def test_each_block_gets_its_own_outcome_in_order() -> None:
    async with linked(Server()) as (requester, _):
        asked = wanted("f3", "f1", "f7") + [("ghost", 0, 10, bytes(32))]
        results = await requester.request_many("default", asked)
    assert results[:3] == [BLOCKS["f3"], BLOCKS["f1"], BLOCKS["f7"]]
    assert isinstance(results[3], RequestFailed) and results[3].code == ErrorCode.NO_SUCH_FILE
    assert requester.outgoing.in_use == 0


async def test_requesters_sharing_a_small_budget_both_finish() -> None:
    """Together they want more than the budget: each answer returns its bytes at once, so
    neither waits on budget the other holds."""
    budget = 3 * 120  # about three blocks
    async with linked(Server(), outgoing_budget=budget) as (requester, _):
        results: dict[int, list[bytes | RequestFailed]] = {}

        async def ask(key: int, names: list[str]) -> None:
            results[key] = await requester.request_many("default", wanted(*names))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, 0, [f"f{i}" for i in range(0, 6)])
                nursery.start_soon(ask, 1, [f"f{i}" for i in range(6, 12)])
    assert results[0] == [BLOCKS[f"f{i}"] for i in range(0, 6)]
    assert results[1] == [BLOCKS[f"f{i}"] for i in range(6, 12)]
    assert requester.outgoing.in_use == 0 and requester.outgoing.peak <= budget


async def answer_all_but(
    held: str, stream: trio.abc.Stream, conn: Connection, *, then_close: bool
) -> None:
    """A bare protocol peer: answers each request as it arrives, except ``held``, at which
    it closes the stream (``then_close``) or which it never answers."""
    await stream.send_all(conn.send(ClusterConfig()))
    while True:
        data = await stream.receive_some()
        if not data:
            return
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            if not isinstance(event, Request):
                continue
            if event.name != held:
                await stream.send_all(conn.send(Response(id=event.id, data=BLOCKS[event.name])))
            elif then_close:
                await stream.aclose()
                return


@asynccontextmanager
async def linked_to_bare_peer(
    held: str, *, then_close: bool, **options: object
) -> AsyncIterator[PeerConnection]:
    ours, theirs = connected_pair()
    a_stream, b_stream = trio.testing.memory_stream_pair()
    requester = PeerConnection(a_stream, ours, DeviceID(bytes(32)), "memory", **options)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(requester.run, Server())
        await requester.send(ClusterConfig())
        nursery.start_soon(partial(answer_all_but, held, b_stream, theirs, then_close=then_close))
        yield requester
        nursery.cancel_scope.cancel()


async def test_a_lost_connection_fails_only_what_was_not_answered() -> None:
    async with linked_to_bare_peer("f2", then_close=True) as requester:
        with trio.fail_after(10):
            results = await requester.request_many("default", wanted("f0", "f1", "f2", "f3"))
    assert results[:2] == [BLOCKS["f0"], BLOCKS["f1"]]
    assert all(isinstance(r, RequestFailed) and "connection lost" in str(r) for r in results[2:])
    assert requester.outgoing.in_use == 0


async def test_the_deadline_fails_what_is_still_missing(autojump_clock: trio.abc.Clock) -> None:
    async with linked_to_bare_peer("f5", then_close=False, request_timeout=30.0) as requester:
        results = await requester.request_many("default", wanted("f4", "f5", "f6"))
    assert results[0] == BLOCKS["f4"] and results[2] == BLOCKS["f6"]
    assert isinstance(results[1], RequestFailed) and "timed out" in str(results[1])
    assert requester.outgoing.in_use == 0


async def test_requests_that_arrive_together_are_served_as_one_group() -> None:
    groups: list[list[str]] = []

    class Recording(Server):
        async def handle_requests(
            self, peer: PeerConnection, requests: list[Request]
        ) -> list[Response]:
            groups.append([r.name for r in requests])
            return await super().handle_requests(peer, requests)

    async with linked(Recording()) as (requester, _):
        names = [f"f{i}" for i in range(12)]
        results = await requester.request_many("default", wanted(*names))
    assert results == [BLOCKS[n] for n in names]
    assert sorted(n for g in groups for n in g) == sorted(names)
    assert len(groups) < len(names)  # queued together, read together, served together


async def test_nothing_wanted_and_a_closed_connection() -> None:
    async with linked(Server()) as (requester, _):
        assert await requester.request_many("default", []) == []
        await requester.close("done")
        results = await requester.request_many("default", wanted("f0", "f1"))
    assert all(isinstance(r, RequestFailed) for r in results)
    assert requester.outgoing.in_use == 0


async def test_a_failing_handler_answers_its_group_with_errors_and_keeps_the_connection() -> None:
    class Broken(Server):
        async def handle_requests(
            self, peer: PeerConnection, requests: list[Request]
        ) -> list[Response]:
            if any(r.name == "f9" for r in requests):
                raise RuntimeError("a bug in serving")
            if any(r.name == "f8" for r in requests):
                return []  # the wrong number of answers: also a bug
            return await super().handle_requests(peer, requests)

    async with linked(Broken()) as (requester, _):
        for name in ("f9", "f8"):
            [failed] = await requester.request_many("default", wanted(name))
            assert isinstance(failed, RequestFailed) and failed.code == ErrorCode.GENERIC
        assert await requester.request_many("default", wanted("f1")) == [BLOCKS["f1"]]
        assert not requester.closed
