"""A directory as a zip archive, produced chunk by chunk without temp files.

The stdlib ``zipfile`` writes to a sink that only appends (it then uses data descriptors
instead of seeking back); the generator hands out what the sink holds as it fills. Each
file goes in as one consistent version (``paths.read_consistent``) or the archive fails.
Blocking: step the generator from a worker thread.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Iterator

from ..errors import NotFoundError, UnsafePathError
from ..scanner.ignore import Ignore
from .paths import Version, open_inside, read_consistent, walk_files

CHUNK = 256 * 1024
ZIP64_LIMIT = (1 << 31) - 1


class _Sink:
    """Append-only byte buffer that zipfile writes into."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _date_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(max(mtime, 315_532_800))  # zip cannot hold times before 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def zip_chunks(root_fd: int, name: str, ignore: Ignore, files: list[str]) -> Iterator[bytes]:
    """The zip of directory ``name`` (members named relative to it); ``files`` collects
    the folder-relative names put in. Raises FileChangedError when a file changes."""
    sink = _Sink()
    prefix = len(name) + 1 if name else 0
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:  # type: ignore[call-overload]
        for child, child_is_dir in walk_files(root_fd, name, ignore):
            arcname = child[prefix:]
            if child_is_dir:
                zf.writestr(zipfile.ZipInfo(arcname + "/"), b"")
                continue
            try:
                fd = open_inside(root_fd, child)
            except (NotFoundError, UnsafePathError):
                continue  # gone, or swapped for a symlink, since the walk: left out
            try:
                st = os.fstat(fd)
                start = Version.of(st)
                info = zipfile.ZipInfo(arcname, _date_time(st.st_mtime))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = start.size
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=start.size > ZIP64_LIMIT) as member:
                    for data in read_consistent(fd, start):
                        member.write(data)
                        if len(sink.buffer) >= CHUNK:
                            yield sink.take()
            finally:
                os.close(fd)
            files.append(child)
            if sink.buffer:
                yield sink.take()
    yield sink.take()
