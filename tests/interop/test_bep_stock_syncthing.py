"""The BEP codec against a real, unmodified Syncthing (Debian's 1.19 build), on loopback.

A test peer built from our sans-IO Connection and BepCodec talks to stock Syncthing:
Hello both ways, the pending-device flow, ClusterConfig, an LZ4-compressed Index from
Syncthing, and a file Syncthing pulls from us block by block.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from bep_client import BepTestPeer
from stock_syncthing import StockSyncthing, needs_syncthing, stock_syncthing, wait_for

from p2psync.identity import DeviceID, generate_identity
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE, BlockInfo, FileInfo
from p2psync.protocol.messages import (
    ClusterConfig,
    ConnectionClosed,
    Folder,
    FolderDevice,
    Hello,
    Index,
    IndexUpdate,
    Request,
    Response,
)
from p2psync.protocol.vector import make

pytestmark = needs_syncthing


@pytest.fixture
def syncthing(tmp_path: Path):
    with stock_syncthing(tmp_path / "st-home", name="stock-st") as st:
        yield st


def pending_names(st: StockSyncthing) -> dict[str, str]:
    return {
        dev_id: info.get("name", "")
        for dev_id, info in st.get("/rest/cluster/pending/devices").items()
    }


def test_an_unknown_p2psync_device_is_listed_as_pending_with_its_name(syncthing) -> None:
    identity = generate_identity()
    peer = BepTestPeer(identity, syncthing.listen_port, "p2psync-laptop")
    their_hello = peer.next_event()
    assert isinstance(their_hello, Hello)
    assert their_hello.client_name == "syncthing" and their_hello.client_version.startswith("v1.")
    assert isinstance(peer.next_event(), ConnectionClosed)  # unknown: Syncthing hangs up
    peer.close()
    me = str(DeviceID.from_cert_der(identity.cert_der))
    names = wait_for(lambda: pending_names(syncthing), 10, "a pending device in Syncthing")
    assert names == {me: "p2psync-laptop"}


def test_syncthing_and_our_codec_exchange_an_index_and_a_file(syncthing, tmp_path: Path) -> None:
    identity = generate_identity()
    me = DeviceID.from_cert_der(identity.cert_der)
    them = DeviceID.parse(syncthing.device_id)
    folder_path = tmp_path / "st-folder"
    folder_path.mkdir()
    for i in range(300):  # enough for Syncthing to LZ4-compress its Index
        (folder_path / f"note-{i:03}.txt").write_text(f"note {i}\n" * 20)
    syncthing.add_device(str(me), "p2psync-peer")
    syncthing.add_folder("interop", folder_path, [str(me)])
    wait_for(
        lambda: syncthing.get("/rest/db/status?folder=interop").get("localFiles") == 300,
        30,
        "Syncthing's scan of 300 files",
    )

    peer = BepTestPeer(identity, syncthing.listen_port, "p2psync-peer")
    assert isinstance(peer.next_event(), Hello)
    cc = peer.next_event()
    assert isinstance(cc, ClusterConfig)
    (folder,) = cc.folders
    assert folder.id == "interop"
    devices = {d.id: d for d in folder.devices}
    assert set(devices) == {me.raw, them.raw}
    their_index_id = devices[them.raw].index_id
    assert their_index_id != 0 and devices[them.raw].max_sequence >= 300

    content = os.urandom(MIN_BLOCK_SIZE + 1000)  # two blocks
    blocks = tuple(
        BlockInfo(off, len(content[off : off + MIN_BLOCK_SIZE]),
                  hashlib.sha256(content[off : off + MIN_BLOCK_SIZE]).digest())
        for off in (0, MIN_BLOCK_SIZE)
    )  # fmt: skip
    mtime_ns = 1_700_000_000_123_456_789
    ours = FileInfo(
        name="from-p2psync.bin",
        size=len(content),
        permissions=0o640,
        modified_ns=mtime_ns,
        modified_by=me.short_id,
        version=make([(me.short_id, 1_700_000_001)]),
        sequence=1,
        block_size=MIN_BLOCK_SIZE,
        blocks=blocks,
    )
    our_index_id = 0x1234_5678_9ABC_DEF0
    peer.send(
        ClusterConfig(
            folders=(
                Folder(
                    id="interop",
                    label="interop",
                    devices=(
                        FolderDevice(
                            id=me.raw, name="p2psync-peer", max_sequence=1, index_id=our_index_id
                        ),
                        FolderDevice(id=them.raw, name="stock-st"),
                    ),
                ),
            )
        )  # fmt: skip
    )
    peer.send(Index(folder="interop", files=(ours,), last_sequence=1))

    received: dict[str, FileInfo] = {}
    served = 0
    deadline = time.monotonic() + 60
    while not (served == 2 and "from-p2psync.bin" in received and len(received) >= 301):
        assert time.monotonic() < deadline, (served, len(received), syncthing.log())
        event = peer.next_event()
        if isinstance(event, Request):
            assert event.folder == "interop" and event.name == "from-p2psync.bin"
            block = content[event.offset : event.offset + event.size]
            assert hashlib.sha256(block).digest() == event.hash
            peer.send(Response(id=event.id, data=block))
            served += 1
        elif isinstance(event, Index | IndexUpdate):
            received.update((f.name, f) for f in event.files)
    peer.close()

    assert peer.conn.wire.compressed_received >= 1  # Syncthing's 300-entry Index: LZ4
    notes = [f for name, f in received.items() if name.startswith("note-")]
    assert len(notes) == 300
    assert received["note-007.txt"].size == len("note 7\n" * 20)
    echoed = received["from-p2psync.bin"]
    assert echoed.version == ours.version and echoed.blocks == ours.blocks
    on_disk = folder_path / "from-p2psync.bin"
    assert on_disk.read_bytes() == content
    assert on_disk.stat().st_mtime_ns == mtime_ns
    assert on_disk.stat().st_mode & 0o777 == 0o640
