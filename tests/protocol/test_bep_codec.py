"""Syncthing's BEP encoding: every message survives a trip, bytes match the spec's
examples, and hostile lengths fail before anything is buffered or decompressed."""

from __future__ import annotations

import struct

import lz4.block
import pytest
from protocol_support import DEV_A, SHORT_A, drain, file_with_content, hello, sample_messages

from p2psync.errors import LocalProtocolError, RemoteProtocolError
from p2psync.protocol.bep import BepCodec
from p2psync.protocol.bep import proto as pb
from p2psync.protocol.connection import Connection
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE, FileType
from p2psync.protocol.messages import (
    ClusterConfig,
    Compression,
    Index,
    Ping,
    Response,
)
from p2psync.protocol.state import State
from p2psync.protocol.vector import make
from p2psync.protocol.wire import MSGPACK, codec_for_alpn


def bep_pair() -> tuple[Connection, Connection]:
    a = Connection(hello("alpha"), wire=BepCodec())
    b = Connection(hello("beta"), wire=BepCodec())
    b.receive_data(a.start())
    a.receive_data(b.start())
    assert drain(a) == [hello("beta")] and drain(b) == [hello("alpha")]
    return a, b


def frame(header: bytes, body: bytes) -> bytes:
    return struct.pack(">H", len(header)) + header + struct.pack(">I", len(body)) + body


def test_every_sample_message_survives_a_trip() -> None:
    a, b = bep_pair()
    a.receive_data(b.send(ClusterConfig()))
    assert drain(a) == [ClusterConfig()]
    for message in sample_messages():
        if isinstance(message, Response):
            continue  # a Response must answer a Request: sent below, after its Request
        b.receive_data(a.send(message))
        got = drain(b)
        assert got == [message], type(message).__name__
        if hasattr(message, "id") and type(message).__name__ == "Request":
            answer = next(
                m for m in sample_messages() if isinstance(m, Response) and m.id == message.id
            )
            a.receive_data(b.send(answer))
            assert drain(a) == [answer]


def test_hello_has_syncthings_magic_and_a_protobuf_body() -> None:
    data = Connection(hello(), wire=BepCodec()).start()
    magic, length = struct.unpack(">IH", data[:6])
    assert magic == 0x2EA7D90B and length == len(data) - 6
    parsed = pb.Hello.FromString(data[6:])
    assert (parsed.device_name, parsed.client_name) == ("alpha", "p2psync")


def test_ping_is_the_specs_bytes_and_cluster_config_has_an_empty_header() -> None:
    a, b = bep_pair()
    assert a.send(ClusterConfig()) == bytes.fromhex("0000 00000000")
    assert a.send(Ping()) == bytes.fromhex("0002 0806 00000000")


def test_a_big_index_is_lz4_compressed_with_a_big_endian_length() -> None:
    files = tuple(
        file_with_content(f"dir/file-{i:04}.txt", b"same", sequence=i + 1) for i in range(300)
    )
    a, b = bep_pair()
    a.send(ClusterConfig())
    b.receive_data(a.send(ClusterConfig()))  # b must see a ClusterConfig first
    drain(b)
    data = a.send(Index(folder="default", files=files, last_sequence=300))
    (header_len,) = struct.unpack(">H", data[:2])
    header = pb.Header.FromString(data[2 : 2 + header_len])
    assert (header.type, header.compression) == (1, 1)
    body = data[2 + header_len + 4 :]
    (raw_size,) = struct.unpack(">I", body[:4])
    plain = lz4.block.decompress(body[4:], uncompressed_size=raw_size)
    assert len(plain) == raw_size and len(body) < raw_size / 3
    b.receive_data(data)
    assert drain(b) == [Index(folder="default", files=files, last_sequence=300)]


def test_responses_are_not_compressed_unless_the_peer_asks_for_always() -> None:
    payload = b"a" * 4096
    body = pb.Response(id=1, data=payload).SerializeToString()
    codec = BepCodec()
    assert codec.encode_message(Response(id=1, data=payload)).endswith(body)
    codec.compression = Compression.ALWAYS
    assert len(codec.encode_message(Response(id=1, data=payload))) < len(body)
    codec.compression = Compression.NEVER
    files = tuple(file_with_content(f"f{i}", b"x", sequence=i + 1) for i in range(50))
    assert (
        pb.Header.FromString(codec.encode_message(Index(folder="d", files=files))[2:4]).compression
        == 0
    )


def steady_receiver() -> Connection:
    a, b = bep_pair()
    b.receive_data(a.send(ClusterConfig()))
    drain(b)
    return b


def test_an_lz4_body_claiming_more_than_the_limit_fails_before_decompressing() -> None:
    b = steady_receiver()
    body = struct.pack(">I", 2**31) + b"\x00"
    b.receive_data(frame(pb.Header(type=1, compression=1).SerializeToString(), body))
    with pytest.raises(RemoteProtocolError, match="LZ4 body claims"):
        drain(b)


def test_a_hostile_message_length_fails_before_the_body_arrives() -> None:
    b = steady_receiver()
    b.receive_data(struct.pack(">H", 2) + bytes.fromhex("0801") + struct.pack(">I", 0xFFFFFFF0))
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        drain(b)


def test_a_long_header_is_refused() -> None:
    b = steady_receiver()
    b.receive_data(struct.pack(">H", 0x8000))
    with pytest.raises(RemoteProtocolError, match="not a header"):
        drain(b)


def test_garbage_protobuf_is_a_remote_error() -> None:
    b = steady_receiver()
    b.receive_data(frame(bytes.fromhex("0801"), b"\xff\xff\xff"))
    with pytest.raises(RemoteProtocolError, match="malformed protobuf"):
        drain(b)


def index_of(*names: bytes) -> bytes:
    """An Index frame of directories with these raw names."""
    index = pb.Index(folder="default", last_sequence=len(names))
    for i, name in enumerate(names):
        entry = index.files.add(name=name, type=1, sequence=i + 1)
        entry.version.counters.add(id=SHORT_A, value=5)
    return frame(bytes.fromhex("0801"), index.SerializeToString())


def test_names_syncthing_allows_but_we_cannot_store_are_set_aside_not_fatal() -> None:
    b = steady_receiver()
    b.receive_data(index_of(b"ok", b"back\\slash", b"bad\xff", b"ctrl\x01", b"also-ok"))
    (got,) = drain(b)
    assert isinstance(got, Index)
    assert [f.name for f in got.files] == ["ok", "also-ok"]
    reasons = {u.name: u.reason for u in got.unsupported}
    assert set(reasons) == {"back\\slash", "bad\\xff", "ctrl\x01"}
    assert "backslash" in reasons["back\\slash"] and "UTF-8" in reasons["bad\\xff"]


@pytest.mark.parametrize("name", [b"../escape", b"/absolute", b"a//b", b"a/./b", b"."])
def test_names_syncthing_itself_refuses_still_end_the_connection(name: bytes) -> None:
    b = steady_receiver()
    b.receive_data(index_of(b"ok", name))
    with pytest.raises(RemoteProtocolError, match=r"Index.files\[1\].name"):
        drain(b)


def test_old_peers_forms_are_read_as_today_forms() -> None:
    """Directories of size 128, block_size 0 (= 128 KiB) and the deprecated symlink types."""
    content = file_with_content("f.bin", b"z" * 10)
    index = pb.Index(folder="default")
    for name, ftype, size in (("dir", 1, 128), ("link", 2, 0), ("f.bin", 0, 10)):
        entry = index.files.add(name=name.encode(), type=ftype, size=size)
        entry.version.counters.add(id=SHORT_A, value=5)
        if ftype == 2:
            entry.symlink_target = b"target"
        if ftype == 0:
            block = content.blocks[0]
            entry.blocks.add(offset=0, size=block.size, hash=block.hash)
    b = steady_receiver()
    b.receive_data(frame(bytes.fromhex("0801"), index.SerializeToString()))
    (got,) = drain(b)
    assert isinstance(got, Index)
    directory, link, regular = got.files
    assert directory.is_directory and directory.size == 0
    assert link.type == FileType.SYMLINK and link.symlink_target == "target"
    assert regular.block_size == MIN_BLOCK_SIZE and regular.version == make([(SHORT_A, 5)])


def test_a_p2psync_hello_on_a_bep_connection_says_which_protocol_it_is() -> None:
    conn = Connection(hello(), wire=BepCodec())
    conn.receive_data(Connection(hello()).start())
    with pytest.raises(RemoteProtocolError, match="speaks p2psync/1"):
        conn.next_event()
    assert conn.their_state is State.ERROR


def test_invalid_messages_are_refused_before_sending() -> None:
    a, _ = bep_pair()
    a.send(ClusterConfig())
    bad = file_with_content("../escape", b"x")
    with pytest.raises(LocalProtocolError, match="refusing to send"):
        a.send(Index(folder="default", files=(bad,)))


def test_the_codec_follows_the_negotiated_alpn() -> None:
    assert codec_for_alpn(b"p2psync/1") is MSGPACK
    assert isinstance(codec_for_alpn(b"bep/1.0"), BepCodec)
    assert codec_for_alpn(b"h2") is None and codec_for_alpn(None) is None
    assert DEV_A  # the shared sample IDs stay importable for the BEP tests
