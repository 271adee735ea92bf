"""Small whole-file helpers over the FileSystem interface (ignore files, tests, tools)."""

from __future__ import annotations

from .base import FileSystem

_CHUNK = 1 << 20


def read_all(fs: FileSystem, name: str) -> bytes:
    """The whole content of a regular file. For small files: it is held in memory."""
    parts: list[bytes] = []
    offset = 0
    with fs.open_read(name) as handle:
        while chunk := handle.read_at(offset, _CHUNK):
            parts.append(chunk)
            offset += len(chunk)
    return b"".join(parts)


def write_all(fs: FileSystem, name: str, data: bytes, *, mtime_ns: int | None = None) -> None:
    """Replace ``name``'s content in place (not atomic: the puller uses temp + rename)."""
    with fs.open_write(name) as handle:
        handle.truncate(0)
        handle.write_at(0, data)
    if mtime_ns is not None:
        fs.set_mtime(name, mtime_ns)
