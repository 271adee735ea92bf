"""What the collaborators of one folder's runner share, passed to each as one value."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from ..config import FolderConfig
from ..fs.base import FileSystem
from ..identity import DeviceID
from .folder_index import FolderIndex
from .folder_lock import FolderLock
from .folder_report import FolderReport
from .notify import SequenceWatch
from .pull import Puller
from .serve import BlockServer

Db = Callable[..., Awaitable[Any]]  # runs a blocking index call in a worker thread


@dataclass(frozen=True)
class FolderParts:
    id: str
    config: Callable[[], FolderConfig]  # the config now: it changes while a round runs
    fs: FileSystem
    index: FolderIndex
    local: DeviceID
    db: Db
    io_limiter: trio.CapacityLimiter  # block reads, writes and hashes
    puller: Puller
    server: BlockServer
    local_sequence: SequenceWatch  # peers wait on it for what to send next
    report: FolderReport
    lock: FolderLock  # held while the folder runs
