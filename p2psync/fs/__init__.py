"""Filesystem access for shared folders: the interface (base), the real disk (basic),
an in-memory fake (fake) and the names p2psync reserves inside a folder (internal)."""

from __future__ import annotations

from .base import DirEntry, FileStat, FileSystem, ReadHandle, WriteHandle
from .basic import BasicFS
from .fake import FakeFS
from .util import read_all, write_all

__all__ = [
    "BasicFS",
    "DirEntry",
    "FakeFS",
    "FileStat",
    "FileSystem",
    "ReadHandle",
    "WriteHandle",
    "read_all",
    "write_all",
]
