"""PeerConnection.send: messages queued while a write is in progress go out together, in
the order they were sent, and each caller returns once its own message is written."""

from __future__ import annotations

import hashlib

import trio
import trio.testing
from net_helpers import connected_pair

from p2psync.identity import DeviceID
from p2psync.net.peer import SERVE_AHEAD, PeerConnection
from p2psync.protocol.connection import NEED_DATA
from p2psync.protocol.messages import ClusterConfig, Request, Response


class SlowStream(trio.abc.Stream):
    """Records every send_all; each write takes a scheduling round, as a real socket might."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        return b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_concurrent_sends_are_coalesced_and_keep_their_order() -> None:
    ours, theirs = connected_pair()
    stream = SlowStream()
    peer = PeerConnection(stream, ours, DeviceID(bytes(32)), "memory")
    await peer.send(ClusterConfig())
    returned: list[int] = []
    called: list[int] = []

    async def send_request(i: int) -> None:
        called.append(i)  # send() encodes before its first checkpoint
        await peer.send(Request(i, "default", f"f{i}", 0, 10, hashlib.sha256(b"%d" % i).digest()))
        returned.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(1, 51):
            nursery.start_soon(send_request, i)

    assert sorted(returned) == list(range(1, 51))
    assert len(stream.writes) < 20, "queued messages must share writes"
    assert peer.stats.messages_out == 51
    assert peer.stats.bytes_out == sum(len(w) for w in stream.writes)
    theirs.receive_data(b"".join(stream.writes))
    events = []
    while (event := theirs.next_event()) is not NEED_DATA:
        events.append(event)
    assert isinstance(events[0], ClusterConfig)
    assert [e.id for e in events[1:]] == called  # the order of the calls is the wire order


class NoHandler:
    async def handle_message(self, peer: PeerConnection, message: object) -> None:
        raise AssertionError("no message expected")

    async def handle_requests(self, peer: PeerConnection, requests: list[Request]) -> object:
        raise AssertionError("no request expected")


async def test_callers_cancelled_mid_write_lose_nothing_and_break_nothing() -> None:
    ours, theirs = connected_pair()
    stream = SlowStream()
    peer = PeerConnection(stream, ours, DeviceID(bytes(32)), "memory")
    await peer.send(ClusterConfig())
    called: list[int] = []

    async def send_request(i: int) -> None:
        called.append(i)
        await peer.send(Request(i, "default", f"f{i}", 0, 10, hashlib.sha256(b"%d" % i).digest()))

    async with trio.open_nursery() as connection:
        await connection.start(peer.run, NoHandler())
        async with trio.open_nursery() as callers:
            for i in range(1, 21):
                callers.start_soon(send_request, i)
            await trio.lowlevel.checkpoint()
            callers.cancel_scope.cancel()  # while the writer is busy with their messages
        await send_request(99)  # the connection still works, and nothing was lost
        assert not peer.closed
        connection.cancel_scope.cancel()

    theirs.receive_data(b"".join(stream.writes))
    events = []
    while (event := theirs.next_event()) is not NEED_DATA:
        events.append(event)
    assert [e.id for e in events if isinstance(e, Request)] == called


class GatedStream(trio.abc.Stream):
    """Delivers ``incoming`` to the reader; every write waits until ``gate`` is set."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = incoming
        self.gate = trio.Event()
        self.writes: list[bytes] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.gate.wait()
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await self.gate.wait()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.incoming:
            data, self.incoming = self.incoming, b""
            return data
        await trio.sleep_forever()
        return b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_blocks_are_read_only_a_few_mib_ahead_of_a_slow_socket() -> None:
    ours, theirs = connected_pair()
    block = 1024 * 1024
    our_config = ours.send(ClusterConfig())
    theirs.receive_data(our_config)
    assert isinstance(theirs.next_event(), ClusterConfig)
    requests = [Request(i, "default", f"f{i}", 0, block, bytes(32)) for i in range(1, 13)]
    asked = theirs.send(ClusterConfig()) + b"".join(theirs.send(r) for r in requests)
    stream = GatedStream(asked)  # 12 MiB of requests at once
    peer = PeerConnection(stream, ours, DeviceID(bytes(32)), "memory")
    read: list[int] = []

    class Serving(NoHandler):
        async def handle_message(self, peer: PeerConnection, message: object) -> None:
            assert isinstance(message, ClusterConfig)

        async def handle_requests(self, peer: PeerConnection, requests: list[Request]) -> object:
            read.extend(r.id for r in requests)
            return [Response(id=r.id, data=b"x" * r.size) for r in requests]

    async with trio.open_nursery() as connection:
        await connection.start(peer.run, Serving())
        await trio.testing.wait_all_tasks_blocked()
        assert 1 <= len(read) <= SERVE_AHEAD // block  # the rest wait: the socket is stuck
        stream.gate.set()
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked()  # all in memory: everything done
        assert len(read) == len(requests) and peer.serving.in_use == 0
        connection.cancel_scope.cancel()
    assert sorted(read) == [r.id for r in requests]
    assert peer.serving.peak <= SERVE_AHEAD
    theirs.receive_data(b"".join(stream.writes))
    answered = []
    while (event := theirs.next_event()) is not NEED_DATA:
        if isinstance(event, Response):
            answered.append(event.id)
    assert sorted(answered) == [r.id for r in requests]


async def test_block_data_is_written_uncopied_and_small_messages_still_share_writes() -> None:
    ours, theirs = connected_pair()
    theirs.receive_data(ours.send(ClusterConfig()))
    assert isinstance(theirs.next_event(), ClusterConfig)
    requests = [Request(i, "default", f"f{i}", 0, 256 * 1024, bytes(32)) for i in range(1, 4)]
    ours.receive_data(theirs.send(ClusterConfig()) + b"".join(theirs.send(r) for r in requests))
    while ours.next_event() is not NEED_DATA:
        pass
    stream = SlowStream()
    peer = PeerConnection(stream, ours, DeviceID(bytes(32)), "memory")
    blocks = [bytes([i]) * r.size for i, r in enumerate(requests)]
    responses = [Response(r.id, block) for r, block in zip(requests, blocks, strict=True)]
    await peer.send_many(responses)

    for block in blocks:  # SlowStream's bytes() of a bytes object is that object
        assert any(write is block for write in stream.writes), "a block was copied"
    # Each block's frame prefix shares a write with the previous frame's last bytes.
    assert len(stream.writes) == 2 * len(blocks) + 1
    assert peer.stats.messages_out == len(blocks)
    assert peer.stats.bytes_out == sum(len(w) for w in stream.writes)
    theirs.receive_data(b"".join(stream.writes))
    got = []
    while (event := theirs.next_event()) is not NEED_DATA:
        got.append(event)
    assert got == responses
