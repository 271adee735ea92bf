"""Filesystem access for shared folders: the interface (base), the real disk (basic),
an in-memory fake (fake) and the names p2psync reserves inside a folder (internal).

The implementations load on first use, so a process that only needs the reserved names
(the watcher child process) does not import them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import DirEntry, FileStat, FileSystem, ReadHandle, WriteHandle
    from .basic import BasicFS
    from .fake import FakeFS
    from .util import read_all, write_all

_WHERE = {
    "DirEntry": "base",
    "FileStat": "base",
    "FileSystem": "base",
    "ReadHandle": "base",
    "WriteHandle": "base",
    "BasicFS": "basic",
    "FakeFS": "fake",
    "read_all": "util",
    "write_all": "util",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
