"""A sharing change sent to a connection that breaks meanwhile: the config change that
asked for it stands (the API answered 500 once, when a Syncthing peer reconnected just
as its folder was accepted); the next connection sends a fresh ClusterConfig anyway."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from net_helpers import connected_pair

from p2psync.config import Config
from p2psync.events import EventLog
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.net.peer import PeerConnection
from p2psync.pending import PendingStore
from p2psync.sync.exchange import SyncModel

PEER = DeviceID(bytes(range(1, 33)))


class BreakingStream(trio.abc.Stream):
    """Takes writes until ``broken`` is set, then fails them as a reset socket does."""

    def __init__(self) -> None:
        self.broken = False
        self.writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.broken:
            raise trio.BrokenResourceError("connection reset by peer")
        self.writes += 1

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        return b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_a_connection_broken_under_a_sharing_change_does_not_fail_it(
    tmp_path: Path,
) -> None:
    index = IndexStore.open(tmp_path / "index.db", bytes(32))
    model = SyncModel(
        local=DeviceID(bytes(32)),
        get_config=Config,
        index=index,
        db_limiter=trio.CapacityLimiter(1),
        pending=PendingStore(tmp_path),
        events=EventLog(),
    )
    stream = BreakingStream()
    peer = PeerConnection(stream, connected_pair()[0], PEER, "memory")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(model.serve_peer, peer)
            await trio.testing.wait_all_tasks_blocked()  # serving: only reading is left
            assert PEER in model.connections and stream.writes == 1
            stream.broken = True
            await model.resend_cluster_config(PEER)  # must not raise
            nursery.cancel_scope.cancel()
    finally:
        index.close()
