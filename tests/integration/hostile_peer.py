"""A test helper that speaks the p2psync protocol as a *trusted* peer, to misbehave.

It has its own identity, is added to a real node's config as a device sharing a folder,
connects over real TCP + TLS, exchanges Hello and ClusterConfig like ``sync/exchange.py``
does, and then can send well-formed messages, raw frames that skip our own encoder's
validation (to reach the node's decoder with names a correct peer never sends), serve
block requests with data of its choosing, and flood the node with requests.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgpack
import trio

from p2psync.config import DeviceConfig
from p2psync.endpoints import parse_endpoint
from p2psync.identity import Identity, generate_identity
from p2psync.net.tls import tls_connect
from p2psync.protocol import codec
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType, block_size_for
from p2psync.protocol.messages import (
    Close,
    ClusterConfig,
    ConnectionClosed,
    Folder,
    FolderDevice,
    Hello,
    Index,
    Message,
    MessageType,
    Request,
    Response,
)
from p2psync.protocol.vector import Counter
from p2psync.protocol.wire_schema import file_info_to_plain
from p2psync.wiring import Node

INDEX_ID = 0x5EED


def file_info(name: str, data: bytes, *, short_id: int, version: int = 1, seq: int = 1) -> FileInfo:
    """A correct FileInfo for ``data`` as if ``short_id`` wrote it."""
    bs = block_size_for(len(data))
    blocks = tuple(
        BlockInfo(off, len(chunk), hashlib.sha256(chunk).digest())
        for off in range(0, max(len(data), 1), bs)
        for chunk in [data[off : off + bs]]
    )
    return FileInfo(
        name=name,
        type=FileType.FILE,
        size=len(data),
        permissions=0o644,
        modified_ns=1_700_000_000_000_000_000,
        modified_by=short_id,
        version=(Counter(short_id, version),),
        sequence=seq,
        block_size=bs,
        blocks=blocks,
    )


def symlink_info(name: str, target: str, *, short_id: int, seq: int = 1) -> FileInfo:
    return FileInfo(
        name=name,
        type=FileType.SYMLINK,
        size=0,
        permissions=0o777,
        modified_ns=1_700_000_000_000_000_000,
        modified_by=short_id,
        version=(Counter(short_id, 1),),
        sequence=seq,
        symlink_target=target,
    )


def raw_frame(mtype: MessageType, plain: dict[str, Any]) -> bytes:
    """A frame as a peer could build it by hand (docs/protocol.md §1.2), skipping the
    encoder's checks: this is how a hostile peer reaches the node's decoder."""
    payload = msgpack.packb(plain, use_bin_type=True)
    return codec.FRAME_HEADER.pack(1 + len(payload), mtype) + payload


def raw_index(folder: str, files: list[dict[str, Any]], last_sequence: int = 1) -> bytes:
    return raw_frame(
        MessageType.INDEX, {"folder": folder, "files": files, "last_sequence": last_sequence}
    )


def empty_request(request_id: int, folder: str, name: str = "public.bin") -> bytes:
    """A Request frame for 0 bytes of ``name``, packed by hand: fast enough for floods, and
    past our own Connection's id checks (it refuses a 4,097th outstanding request)."""
    return raw_frame(MessageType.REQUEST, {
        "id": request_id & 0x7FFFFFFF, "folder": folder, "name": name, "offset": 0, "size": 0,
        "hash": EMPTY_SHA256, "from_temporary": False, "block_no": 0,
    })  # fmt: skip


EMPTY_SHA256 = hashlib.sha256(b"").digest()


def plain_file(fi: FileInfo, **overrides: Any) -> dict[str, Any]:
    return {**file_info_to_plain(fi), **overrides}


async def trust_hostile(node: Node, folder: str, identity: Identity) -> None:
    """Make ``node`` trust ``identity`` and share ``folder`` with it."""
    cfg = node.config.with_device(
        DeviceConfig(id=identity.device_id, name="hostile", addresses=("dynamic",))
    )
    fc = cfg.folder(folder)
    assert fc is not None
    cfg = cfg.with_folder(replace(fc, devices=tuple(fc.devices) + (identity.device_id,)))
    await node.apply_config(cfg)


class HostilePeer:
    def __init__(self, identity: Identity | None = None) -> None:
        self.identity = identity or generate_identity()
        self.device_id = self.identity.device_id
        self.short_id = self.device_id.short_id
        self.conn = Connection(
            Hello(
                device_name="hostile",
                client_name="p2psync",
                client_version="0.0-hostile",
                timestamp=time.time_ns(),
            )
        )
        self.stream: Any = None
        self.their_cluster_config: ClusterConfig | None = None
        self.received: list[Message] = []
        self.closed = trio.Event()
        self._ids = itertools.count(1)

    # ---- connecting ----------------------------------------------------------------
    async def connect(self, node: Node, folder: str) -> None:
        """TLS, Hello, ClusterConfig both ways; on return the node serves us ``folder``."""
        await self.connect_to(node.connections.listen_addresses[0], folder, node.device_id.raw)

    async def connect_to(self, address: str, folder: str, node_id: bytes) -> None:
        """``connect`` to a node known only by its listen address and device ID (a
        daemon in another process)."""
        endpoint = parse_endpoint(address)
        tcp = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        self.stream = await tls_connect(tcp, self.identity)
        await self.stream.send_all(self.conn.start())
        while not isinstance(ev := await self.next_event(), Hello):
            raise AssertionError(f"expected the node's Hello, got {ev!r}")
        ours = FolderDevice(
            id=self.device_id.raw, name="hostile", index_id=INDEX_ID, max_sequence=0
        )
        theirs = FolderDevice(id=node_id, name="node", index_id=0, max_sequence=0)
        await self.send(ClusterConfig(folders=(Folder(id=folder, devices=(ours, theirs)),)))
        ev = await self.next_event()
        assert isinstance(ev, ClusterConfig), f"expected ClusterConfig, got {ev!r}"
        self.their_cluster_config = ev

    async def next_event(self) -> Any:
        """The next event from the node (reads as needed); ConnectionClosed at EOF."""
        while True:
            ev = self.conn.next_event()
            if ev is not NEED_DATA:
                return ev
            try:
                data = await self.stream.receive_some(256 * 1024)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self.conn.receive_data(data)

    # ---- sending -------------------------------------------------------------------
    async def send(self, message: Message) -> None:
        await self.stream.send_all(self.conn.send(message))

    async def send_raw(self, frame: bytes) -> None:
        await self.stream.send_all(frame)

    def request_message(
        self, folder: str, name: str, offset: int, size: int, hash: bytes
    ) -> Request:
        return Request(
            id=next(self._ids), folder=folder, name=name, offset=offset, size=size, hash=hash
        )

    # ---- serving / reading -----------------------------------------------------------
    async def serve(self, blocks: Callable[[Request], bytes | None]) -> None:
        """Read until the node closes: answer its Requests with ``blocks(request)`` (None:
        NO_SUCH_FILE) and keep every other message in ``received``."""
        from p2psync.protocol.messages import ErrorCode

        try:
            while True:
                ev = await self.next_event()
                if isinstance(ev, ConnectionClosed | Close):
                    return
                if isinstance(ev, Request):
                    data = blocks(ev)
                    code = ErrorCode.NO_ERROR if data is not None else ErrorCode.NO_SUCH_FILE
                    await self.send(Response(id=ev.id, data=data or b"", code=code))
                    continue
                self.received.append(ev)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.closed.set()

    async def read_until_closed(self) -> list[Any]:
        """Everything the node sends until it closes the connection."""
        events = []
        while True:
            ev = await self.next_event()
            events.append(ev)
            if isinstance(ev, ConnectionClosed):
                return events

    async def aclose(self) -> None:
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)


def empty_index(folder: str) -> Index:
    return Index(folder=folder, files=(), last_sequence=0)
