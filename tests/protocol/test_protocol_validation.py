"""Every validation rule has a failing case.

A hostile peer is played by mutating the msgpack value of a valid message and sending
the raw frame: the receiver must raise RemoteProtocolError naming the problem. Sending
an invalid message ourselves must raise LocalProtocolError.
"""

from __future__ import annotations

import copy
import struct
from typing import Any

import msgpack
import pytest
from protocol_support import (
    DEV_A,
    file_with_content,
    hello,
    plain_of,
    raw_frame,
    raw_message,
    sample_messages,
    sha,
    steady_receiver,
)

from p2psync.errors import LocalProtocolError, RemoteProtocolError
from p2psync.protocol import codec
from p2psync.protocol import limits as L
from p2psync.protocol.connection import Connection
from p2psync.protocol.fileinfo import MIN_BLOCK_SIZE, BlockInfo, FileInfo
from p2psync.protocol.messages import (
    Close,
    ClusterConfig,
    DownloadProgress,
    ErrorCode,
    FileDownloadProgressUpdate,
    Folder,
    FolderDevice,
    Hello,
    Index,
    Message,
    MessageType,
    Ping,
    Request,
    Response,
    UpdateType,
)
from p2psync.protocol.vector import Counter, make

DROP = object()  # as a new value: remove the key


def mutate(plain: Any, changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    out = copy.deepcopy(plain)
    for path, value in changes:
        target = out
        for key in path[:-1]:
            target = target[key]
        if value is DROP:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return out


# -- base messages, each valid ----------------------------------------------------------

TWO_BLOCK_FILE = file_with_content("a.txt", b"x" * (MIN_BLOCK_SIZE + 5))
INDEX = Index("default", (TWO_BLOCK_FILE,), last_sequence=1)
EMPTY_FILE_INDEX = Index("default", (file_with_content("e", b""),), last_sequence=1)
CLUSTER = sample_messages()[0]
REQUEST = Request(5, "default", "a.txt", 0, 10, sha(b"y"))
RESPONSE = Response(7, b"data")  # answers the receiver's outstanding Request 7
PROGRESS = DownloadProgress(
    "default",
    (
        FileDownloadProgressUpdate(UpdateType.APPEND, "a", make([(1, 2)]), (0, 1), MIN_BLOCK_SIZE),
        FileDownloadProgressUpdate(UpdateType.FORGET, "b"),
    ),
)

F = ("files", 0)
B = ("files", 0, "blocks")
D0 = ("folders", 0, "devices", 0)
U0 = ("updates", 0)
U1 = ("updates", 1)

CASES: list[tuple[str, Message, list[tuple[tuple[Any, ...], Any]], str]] = [
    # names (protocol/names.py rules)
    ("name-dotdot", INDEX, [(F + ("name",), "../x")], r"'\.\.' segment"),
    ("name-dotdot-inside", INDEX, [(F + ("name",), "a/../../x")], r"'\.\.' segment"),
    ("name-absolute", INDEX, [(F + ("name",), "/etc/passwd")], "absolute"),
    ("name-empty", INDEX, [(F + ("name",), "")], "empty name"),
    ("name-dot", INDEX, [(F + ("name",), ".")], "segment"),
    ("name-empty-segment", INDEX, [(F + ("name",), "a//b")], "segment"),
    ("name-trailing-slash", INDEX, [(F + ("name",), "a/")], "segment"),
    ("name-nul", INDEX, [(F + ("name",), "a\x00b")], "NUL"),
    ("name-backslash", INDEX, [(F + ("name",), "a\\..\\b")], "backslash"),
    ("name-control", INDEX, [(F + ("name",), "a\x1bb")], "control"),
    ("name-drive", INDEX, [(F + ("name",), "C:/x")], "drive"),
    ("name-nfd", INDEX, [(F + ("name",), "e\u0301.txt")], "NFC"),
    ("name-too-long", INDEX, [(F + ("name",), "x" * 4097)], "max_str_len"),
    ("name-bytes", INDEX, [(F + ("name",), b"a")], "name: expected a string, got bytes"),
    # types and ranges
    ("type-unknown", INDEX, [(F + ("type",), 2)], "type: 2 is not a FileType"),
    ("type-bool", INDEX, [(F + ("type",), True)], "type: expected an integer, got bool"),
    ("size-negative", INDEX, [(F + ("size",), -1)], r"size: -1 out of range"),
    ("size-float", INDEX, [(F + ("size",), 10.0)], "size: expected an integer, got float"),
    ("permissions-range", INDEX, [(F + ("permissions",), 2**32)], "permissions: .* out of range"),
    ("mtime-range", INDEX, [(F + ("modified_ns",), 2**63)], "modified_ns: .* out of range"),
    ("modified-by-negative", INDEX, [(F + ("modified_by",), -1)], "modified_by: -1 out of range"),
    ("deleted-int", INDEX, [(F + ("deleted",), 1)], "deleted: expected a boolean, got int"),
    ("invalid-none", INDEX, [(F + ("invalid",), None)], "invalid: expected a boolean"),
    ("sequence-negative", INDEX, [(F + ("sequence",), -1)], "sequence: -1 out of range"),
    ("missing-field", INDEX, [(F + ("sequence",), DROP)], r"files\[0\]\.sequence: missing"),
    ("file-not-a-map", INDEX, [(F, [1, 2])], r"files\[0\]: expected a map"),
    ("too-many-keys", INDEX, [(F + (f"x{i}",), 0) for i in range(60)], "max_map_len"),
    # version vectors
    ("vector-duplicate", INDEX, [(F + ("version",), [[1, 2], [1, 3]])], "duplicate counter id 1"),
    ("vector-zero", INDEX, [(F + ("version",), [[1, 0]])], "zero counters"),
    ("vector-unsorted", INDEX, [(F + ("version",), [[2, 1], [1, 1]])], "sorted by id"),
    ("vector-shape", INDEX, [(F + ("version",), [[1]])], r"\[id, value\]"),
    ("vector-negative", INDEX, [(F + ("version",), [[-1, 1]])], r"version\[0\]\.id: -1"),
    ("vector-empty", INDEX, [(F + ("version",), [])], "non-empty version"),
    (
        "vector-too-long",
        INDEX,
        [(F + ("version",), [[i, 1] for i in range(L.MAX_COUNTERS + 1)])],
        "more than 1000",
    ),
    # blocks
    ("block-size-illegal", INDEX, [(F + ("block_size",), 1000)], "not a power of two"),
    ("block-size-zero", INDEX, [(F + ("block_size",), 0)], "not a power of two"),
    (
        "block-size-2x",
        INDEX,
        [(F + ("block_size",), 2 * MIN_BLOCK_SIZE)],
        "only the last block may be short",
    ),
    ("deleted-with-blocks", INDEX, [(F + ("deleted",), True)], "deleted entry has no blocks"),
    ("directory-with-blocks", INDEX, [(F + ("type",), 1)], "a directory has no blocks"),
    ("symlink-with-blocks", INDEX, [(F + ("type",), 4)], "a symlink has no blocks"),
    ("file-without-blocks", INDEX, [(B, [])], "at least one block"),
    ("hash-short", INDEX, [(B + (0, 2), b"h" * 31)], r"blocks\[0\]\.hash: expected 32 bytes"),
    ("hash-str", INDEX, [(B + (0, 2), "h" * 32)], r"blocks\[0\]\.hash: expected bytes"),
    ("block-not-array", INDEX, [(B + (0,), "x")], r"\[offset, size, hash\]"),
    ("block-two-fields", INDEX, [(B + (0,), [0, 1])], r"\[offset, size, hash\]"),
    ("offset-gap", INDEX, [(B + (1, 0), MIN_BLOCK_SIZE + 1)], r"blocks\[1\]\.offset: expected"),
    ("offset-negative", INDEX, [(B + (0, 0), -1)], r"blocks\[0\]\.offset: -1 out of range"),
    ("short-middle-block", INDEX, [(B + (0, 1), 100)], "only the last block may be short"),
    ("last-block-too-big", INDEX, [(B + (1, 1), MIN_BLOCK_SIZE + 1)], r"blocks\[1\]\.size"),
    ("last-block-empty", INDEX, [(B + (1, 1), 0)], r"blocks\[1\]\.size: 0 not in"),
    ("size-mismatch", INDEX, [(F + ("size",), MIN_BLOCK_SIZE + 6)], "blocks cover"),
    ("empty-file-hash", EMPTY_FILE_INDEX, [(B + (0, 2), sha(b"x"))], r"SHA-256\(''\)"),
    ("empty-file-size", EMPTY_FILE_INDEX, [(F + ("size",), 1)], "blocks cover 0"),
    (
        "too-many-blocks",
        INDEX,
        [(B, [[0, 1, b"h" * 32]] * (L.MAX_BLOCKS_PER_FILE + 1))],
        "max_array_len",
    ),
    # directories and symlinks
    ("dir-size", INDEX, [(F + ("type",), 1), (B, []), (F + ("size",), 4096)], "size 0"),
    (
        "symlink-size",
        INDEX,
        [(F + ("type",), 4), (B, []), (F + ("symlink_target",), "t")],
        "size 0",
    ),
    (
        "symlink-no-target",
        INDEX,
        [(F + ("type",), 4), (B, []), (F + ("size",), 0)],
        "a symlink needs a target",
    ),
    (
        "symlink-target-nul",
        INDEX,
        [(F + ("type",), 4), (B, []), (F + ("size",), 0), (F + ("symlink_target",), "a\x00")],
        "symlink_target: contains NUL",
    ),
    ("file-with-target", INDEX, [(F + ("symlink_target",), "t")], "a file has no symlink target"),
    ("target-too-long", INDEX, [(F + ("symlink_target",), "t" * 4097)], "max_str_len"),
    (
        "deleted-bad-block-size",
        INDEX,
        [(F + ("deleted",), True), (B, []), (F + ("block_size",), 3)],
        "legal",
    ),
    # Index / IndexUpdate
    ("folder-empty", INDEX, [(("folder",), "")], "Index.folder: must not be empty"),
    ("folder-control", INDEX, [(("folder",), "a\nb")], "control characters"),
    ("folder-too-long", INDEX, [(("folder",), "f" * 257)], "longer than 256"),
    ("last-sequence", INDEX, [(("last_sequence",), -5)], "last_sequence: -5 out of range"),
    ("files-not-array", INDEX, [(("files",), {})], "Index.files: expected an array"),
    ("too-many-files", INDEX, [(("files",), [0] * (L.MAX_FILES_PER_INDEX + 1))], "more than 10000"),
    ("index-missing-folder", INDEX, [(("folder",), DROP)], "Index.folder: missing"),
    # ClusterConfig
    ("device-id-short", CLUSTER, [(D0 + ("id",), b"x" * 31)], r"devices\[0\]\.id: expected 32"),
    ("device-id-str", CLUSTER, [(D0 + ("id",), "x" * 32)], "expected bytes, got str"),
    (
        "device-twice",
        CLUSTER,
        [(("folders", 0, "devices", 1, "id"), DEV_A)],
        "device is listed twice",
    ),
    ("folder-twice", CLUSTER, [(("folders", 1, "id"), "default")], "folder is listed twice"),
    ("folder-type", CLUSTER, [(("folders", 0, "type"), 9)], "9 is not a FolderType"),
    ("folder-paused-int", CLUSTER, [(("folders", 0, "paused"), 1)], "paused: expected a boolean"),
    ("folder-id-empty", CLUSTER, [(("folders", 0, "id"), "")], "id: must not be empty"),
    ("compression", CLUSTER, [(D0 + ("compression",), 3)], "3 is not a Compression"),
    ("addresses-many", CLUSTER, [(D0 + ("addresses",), ["tcp://h:1"] * 65)], "more than 64"),
    ("address-empty", CLUSTER, [(D0 + ("addresses", 0), "")], r"addresses\[0\]: must not be empty"),
    ("address-long", CLUSTER, [(D0 + ("addresses", 0), "a" * 513)], "longer than 512"),
    ("max-sequence", CLUSTER, [(D0 + ("max_sequence",), -1)], "max_sequence: -1 out of range"),
    ("index-id", CLUSTER, [(D0 + ("index_id",), -1)], "index_id: -1 out of range"),
    ("introducer-str", CLUSTER, [(D0 + ("introducer",), "yes")], "expected a boolean, got str"),
    ("devices-many", CLUSTER, [(("folders", 0, "devices"), [0] * 1001)], "more than 1000"),
    ("folders-many", CLUSTER, [(("folders",), [0] * (L.MAX_FOLDERS + 1))], "more than 4096"),
    # Request
    ("request-name", REQUEST, [(("name",), "../etc/passwd")], r"Request\.name: .*'\.\.'"),
    ("request-absolute", REQUEST, [(("name",), "/etc/passwd")], "absolute"),
    ("request-size", REQUEST, [(("size",), L.MAX_REQUEST_SIZE + 1)], "Request.size: .* out of"),
    ("request-size-negative", REQUEST, [(("size",), -1)], "Request.size: -1 out of range"),
    ("request-offset", REQUEST, [(("offset",), -1)], "Request.offset: -1 out of range"),
    ("request-no-hash", REQUEST, [(("hash",), b"")], "Request.hash: expected 32 bytes, got 0"),
    ("request-hash-missing", REQUEST, [(("hash",), DROP)], "Request.hash: missing"),
    ("request-id", REQUEST, [(("id",), 2**31)], "Request.id: .* out of range"),
    ("request-temp-int", REQUEST, [(("from_temporary",), 0)], "expected a boolean, got int"),
    ("request-block-no", REQUEST, [(("block_no",), -1)], "block_no: -1 out of range"),
    # Response
    ("response-code", RESPONSE, [(("code",), 9)], "9 is not a ErrorCode"),
    ("response-error-data", RESPONSE, [(("code",), 2)], "carries no data"),
    ("response-data-str", RESPONSE, [(("data",), "text")], "Response.data: expected bytes"),
    ("response-data-big", RESPONSE, [(("data",), b"x" * (L.MAX_REQUEST_SIZE + 1))], "max_bin_len"),
    # DownloadProgress
    ("forget-with-blocks", PROGRESS, [(U1 + ("block_indexes",), [1])], "FORGET update lists no"),
    ("append-block-size", PROGRESS, [(U0 + ("block_size",), 5)], "5 is not a legal block size"),
    ("append-no-version", PROGRESS, [(U0 + ("version",), [])], "APPEND update names a version"),
    ("progress-index", PROGRESS, [(U0 + ("block_indexes",), [-1])], r"block_indexes\[0\]"),
    ("progress-index-big", PROGRESS, [(U0 + ("block_indexes",), [65536])], "out of range"),
    ("progress-name", PROGRESS, [(U0 + ("name",), "a/../..")], "segment"),
    ("progress-type", PROGRESS, [(U0 + ("update_type",), 3)], "3 is not a UpdateType"),
    # Close
    ("close-reason-long", Close("x"), [(("reason",), "r" * 1025)], "longer than 1024"),
    ("close-reason-type", Close("x"), [(("reason",), 5)], "Close.reason: expected a string"),
]


def test_every_base_message_is_valid() -> None:
    for base in {id(c[1]): c[1] for c in CASES}.values():
        receiver, _ = steady_receiver()
        receiver.receive_data(raw_message(codec.message_type(base), plain_of(base)))
        assert receiver.next_event() == base


@pytest.mark.parametrize(
    ("base", "changes", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_field_is_a_remote_protocol_error(
    base: Message, changes: list, reason: str
) -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(raw_message(codec.message_type(base), mutate(plain_of(base), changes)))
    with pytest.raises(RemoteProtocolError, match=reason):
        receiver.next_event()


def test_ping_payload_must_be_a_map() -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(raw_message(MessageType.PING, None))
    with pytest.raises(RemoteProtocolError, match="Ping: expected a map"):
        receiver.next_event()


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    receiver, _ = steady_receiver()
    plain = mutate(plain_of(INDEX), [(("future_field",), [1, 2, 3]), (F + ("later",), {})])
    receiver.receive_data(raw_message(MessageType.INDEX, plain))
    assert receiver.next_event() == INDEX


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (raw_frame(8, b"\x80"), "unknown message type 8"),
        (raw_frame(0x7F, b"\x80"), "unknown message type 127"),
        (raw_frame(0x80 | MessageType.PING, b"\x80"), "compressed frames"),
        (b"\x00\x00\x00\x00", "empty frame"),
        (struct.pack(">I", L.MAX_FRAME_SIZE + 1), "exceeds the limit"),
        (raw_frame(MessageType.PING, b"\x80\x80"), "extra data"),
        (raw_frame(MessageType.PING, b""), "malformed msgpack"),
        (raw_frame(MessageType.PING, b"\xc1"), "malformed msgpack"),
        (raw_frame(MessageType.PING, b"\x81\x01\x02"), "strict_map_key"),
        (raw_frame(MessageType.CLOSE, b"\x81\xa6reason\xa2\xff\xfe"), "utf-8"),
        (raw_frame(MessageType.CLOSE, b"\x81\xa6reason\xd4\x01\x00"), "max_ext_len"),
        (raw_frame(MessageType.CLOSE, b"\x81\xa6reason\xd6\xff\x00\x00\x00\x00"), "max_ext_len"),
        (raw_message(MessageType.CLOSE, {"reason": 1.5}), "expected a string, got float"),
    ],
    ids=[
        "type-8",
        "type-127",
        "lz4-flag",
        "zero-length",
        "too-long",
        "trailing-object",
        "empty-payload",
        "never-used-byte",
        "int-map-key",
        "bad-utf8",
        "ext-type",
        "timestamp-ext",
        "float",
    ],  # fmt: skip
)
def test_bad_frames_are_remote_protocol_errors(frame: bytes, reason: str) -> None:
    receiver, _ = steady_receiver()
    receiver.receive_data(frame)
    with pytest.raises(RemoteProtocolError, match=reason):
        receiver.next_event()


def test_frame_limit_is_configurable_per_connection() -> None:
    conn = Connection(hello(), max_frame_size=1000)
    peer = Connection(hello("b"))
    conn.receive_data(peer.start() + peer.send(ClusterConfig()))
    conn.next_event()
    conn.next_event()
    conn.receive_data(struct.pack(">I", 1001))
    with pytest.raises(RemoteProtocolError, match="1001 bytes exceeds the limit of 1000"):
        conn.next_event()


def hello_frame(plain: Any) -> bytes:
    body = msgpack.packb(plain, use_bin_type=True)
    return struct.pack(">IH", L.MAGIC, len(body)) + body


HELLO_PLAIN = {"device_name": "d", "client_name": "c", "client_version": "v", "timestamp": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (hello_frame({**HELLO_PLAIN, "device_name": 1}), "device_name: expected a string"),
        (hello_frame({**HELLO_PLAIN, "device_name": "d" * 257}), "longer than 256"),
        (hello_frame({**HELLO_PLAIN, "timestamp": -1}), "timestamp: -1 out of range"),
        (hello_frame({**HELLO_PLAIN, "timestamp": True}), "expected an integer, got bool"),
        (hello_frame({k: v for k, v in HELLO_PLAIN.items() if k != "client_version"}), "missing"),
        (hello_frame([1, 2]), "Hello: expected a map"),
        (struct.pack(">IH", L.MAGIC, L.MAX_HELLO_SIZE + 1), "exceeds 32767"),
        (struct.pack(">IH", 0xDEADBEEF, 2), "magic 0xdeadbeef"),
    ],
    ids=["name-type", "name-long", "ts-negative", "ts-bool", "missing", "not-map", "long", "magic"],
)
def test_bad_hellos_are_remote_protocol_errors(data: bytes, reason: str) -> None:
    conn = Connection(hello())
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=reason):
        conn.next_event()


# -- our side: invalid messages are refused before they reach the wire ----------------------

BAD_FILE = FileInfo("../escape", version=make([(1, 1)]))
BIG_FILE = FileInfo(  # ~2.9 MB encoded: seven of them overflow a frame
    "big",
    size=60_000 * MIN_BLOCK_SIZE,
    block_size=MIN_BLOCK_SIZE,
    blocks=tuple(BlockInfo(i * MIN_BLOCK_SIZE, MIN_BLOCK_SIZE, bytes(32)) for i in range(60_000)),
    version=make([(1, 1)]),
)
LOCAL_CASES: list[tuple[str, Message, str]] = [
    ("bad-name", Index("f", (BAD_FILE,)), "'..'"),
    ("deleted-blocks", Index("f", (TWO_BLOCK_FILE.with_(deleted=True),)), "no blocks"),
    (
        "unsorted-vector",
        Index("f", (TWO_BLOCK_FILE.with_(version=(Counter(2, 1), Counter(1, 1))),)),
        "sorted",
    ),
    ("bad-type", Index("f", (TWO_BLOCK_FILE.with_(type=7),)), "not a FileType"),
    ("block-object", Index("f", (TWO_BLOCK_FILE.with_(blocks=("nope",)),)), "cannot encode"),
    ("short-hash", Request(1, "f", "a", 0, 1, b"h"), "expected 32 bytes"),
    ("device-id", ClusterConfig((Folder("f", devices=(FolderDevice(b"short"),)),)), "expected 32"),
    ("long-reason", Close("r" * 2000), "longer than 1024"),
    (
        "forget-blocks",
        DownloadProgress("f", (FileDownloadProgressUpdate(UpdateType.FORGET, "a", (), (1,)),)),
        "FORGET",
    ),
    ("not-a-message", "Ping", "not a framed message"),  # type: ignore[list-item]
    (
        "frame-too-big",
        Index("f", tuple(BIG_FILE.with_(name=f"f{i}") for i in range(7))),
        "send smaller batches",
    ),
]


@pytest.mark.parametrize(
    ("message", "reason"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES]
)
def test_sending_an_invalid_message_is_a_local_protocol_error(
    message: Message, reason: str
) -> None:
    _, sender = steady_receiver()
    with pytest.raises(LocalProtocolError, match=reason):
        sender.send(message)
    with pytest.raises(LocalProtocolError, match="unusable"):
        sender.send(Ping())


def test_an_error_response_with_data_is_refused() -> None:
    _, sender = steady_receiver()  # owes a Response to Request 7
    with pytest.raises(LocalProtocolError, match="carries no data"):
        sender.send(Response(7, b"x", ErrorCode.GENERIC))


def test_an_invalid_hello_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="device_name"):
        Connection(Hello(None, "c", "v", 0))  # type: ignore[arg-type]


def test_local_only_fields_are_not_sent() -> None:
    fi = TWO_BLOCK_FILE.as_local(inode=1234, local_flags=5)
    decoded, _ = codec.parse_frame(codec.encode_message(Index("f", (fi,))))
    assert decoded.files[0] == TWO_BLOCK_FILE  # type: ignore[union-attr]
    assert type(decoded.files[0]) is FileInfo  # type: ignore[union-attr]


def test_an_empty_file_has_one_empty_block() -> None:
    fi = FileInfo(
        "e", version=make([(1, 1)]), block_size=MIN_BLOCK_SIZE, blocks=(BlockInfo(0, 0, sha(b"")),)
    )
    decoded, _ = codec.parse_frame(codec.encode_message(Index("f", (fi,))))
    assert decoded == Index("f", (fi,))
