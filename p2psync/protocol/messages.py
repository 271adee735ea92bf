"""The messages two devices exchange, as small frozen dataclasses (like h11's events).

Fields mirror Syncthing's BEP v1 (docs/protocol.md maps them one by one) so a BEP codec
can be added later; the encoding itself lives in ``codec.py``/``wire_schema.py``. Messages do
no validation of their own: the codec checks every field when encoding and decoding.
Sequence fields accept any iterable and are stored as tuples, so equality is by value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .fileinfo import FileInfo
from .vector import EMPTY, Vector


class MessageType(enum.IntEnum):
    """The frame type byte; the values are BEP's ``MessageType`` numbers."""

    CLUSTER_CONFIG = 0
    INDEX = 1
    INDEX_UPDATE = 2
    REQUEST = 3
    RESPONSE = 4
    DOWNLOAD_PROGRESS = 5
    PING = 6
    CLOSE = 7


class FolderType(enum.IntEnum):
    SEND_RECEIVE = 0
    SEND_ONLY = 1
    RECEIVE_ONLY = 2
    RECEIVE_ENCRYPTED = 3  # reserved: BEP's untrusted folders, not implemented


class Compression(enum.IntEnum):
    """What a device wants compressed when others send to it (BEP ``Device.compression``)."""

    METADATA = 0
    NEVER = 1
    ALWAYS = 2


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0
    GENERIC = 1
    NO_SUCH_FILE = 2
    INVALID_FILE = 3


class UpdateType(enum.IntEnum):
    APPEND = 0
    FORGET = 1


def _freeze(obj: object, *names: str) -> None:
    for name in names:
        object.__setattr__(obj, name, tuple(getattr(obj, name)))


@dataclass(frozen=True, slots=True)
class Hello:
    """Sent first by both sides, before the peer is authorised."""

    device_name: str
    client_name: str
    client_version: str
    timestamp: int  # Unix nanoseconds


@dataclass(frozen=True, slots=True)
class FolderDevice:
    """What the sender knows about one device sharing a folder."""

    id: bytes  # raw 32-byte device ID
    name: str = ""
    addresses: tuple[str, ...] = ()
    compression: Compression = Compression.METADATA
    cert_name: str = ""
    max_sequence: int = 0  # highest sequence the sender holds from this device
    introducer: bool = False
    skip_introduction_removals: bool = False
    index_id: int = 0  # which incarnation of that device's index the sequence refers to

    def __post_init__(self) -> None:
        _freeze(self, "addresses")


@dataclass(frozen=True, slots=True)
class Folder:
    id: str
    label: str = ""
    type: FolderType = FolderType.SEND_RECEIVE
    paused: bool = False
    devices: tuple[FolderDevice, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "devices")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The folders the sender shares with the recipient; first message each way."""

    folders: tuple[Folder, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "folders")


@dataclass(frozen=True, slots=True)
class Unsupported:
    """An entry a peer may send (its protocol allows it) that this device cannot store,
    e.g. a name with a backslash from a Syncthing device: kept out of the index and
    shown as "not synced here". Only the BEP codec produces these."""

    name: str  # printable form of the peer's name (undecodable bytes escaped)
    reason: str


@dataclass(frozen=True, slots=True)
class Index:
    """The sender's whole index of a folder (first batch); replaces what the receiver held."""

    folder: str
    files: tuple[FileInfo, ...] = ()
    last_sequence: int = 0
    unsupported: tuple[Unsupported, ...] = ()  # never encoded: see Unsupported

    def __post_init__(self) -> None:
        _freeze(self, "files", "unsupported")


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    """Changes since ``prev_sequence``; merged into what the receiver holds."""

    folder: str
    files: tuple[FileInfo, ...] = ()
    prev_sequence: int = 0
    last_sequence: int = 0
    unsupported: tuple[Unsupported, ...] = ()  # never encoded: see Unsupported

    def __post_init__(self) -> None:
        _freeze(self, "files", "unsupported")


@dataclass(frozen=True, slots=True)
class Request:
    """Ask for ``size`` bytes at ``offset`` of ``name``, which must hash to ``hash``."""

    id: int
    folder: str
    name: str
    offset: int
    size: int
    hash: bytes
    from_temporary: bool = False
    block_no: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    data: bytes = b""
    code: ErrorCode = ErrorCode.NO_ERROR


@dataclass(frozen=True, slots=True)
class FileDownloadProgressUpdate:
    update_type: UpdateType
    name: str
    version: Vector = EMPTY
    block_indexes: tuple[int, ...] = ()
    block_size: int = 0

    def __post_init__(self) -> None:
        _freeze(self, "version", "block_indexes")


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Which blocks of files being pulled the sender already holds in temporary files."""

    folder: str
    updates: tuple[FileDownloadProgressUpdate, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "updates")


@dataclass(frozen=True, slots=True)
class Ping:
    """Keep-alive: sent when nothing else was sent for a while."""


@dataclass(frozen=True, slots=True)
class Close:
    """The last message before the sender closes the connection."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Not a wire message: the peer closed its side of the stream (EOF)."""


Message = ClusterConfig | Index | IndexUpdate | Request | Response | DownloadProgress | Ping | Close

MESSAGE_TYPES: dict[type, MessageType] = {
    ClusterConfig: MessageType.CLUSTER_CONFIG,
    Index: MessageType.INDEX,
    IndexUpdate: MessageType.INDEX_UPDATE,
    Request: MessageType.REQUEST,
    Response: MessageType.RESPONSE,
    DownloadProgress: MessageType.DOWNLOAD_PROGRESS,
    Ping: MessageType.PING,
    Close: MessageType.CLOSE,
}

__all__ = [
    "ClusterConfig",
    "Close",
    "Compression",
    "ConnectionClosed",
    "DownloadProgress",
    "ErrorCode",
    "FileDownloadProgressUpdate",
    "Folder",
    "FolderDevice",
    "FolderType",
    "Hello",
    "Index",
    "IndexUpdate",
    "MESSAGE_TYPES",
    "Message",
    "MessageType",
    "Ping",
    "Request",
    "Response",
    "Unsupported",
    "UpdateType",
]
