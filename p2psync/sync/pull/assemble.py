"""Stage *assemble and verify*: the temp file next to the target (``.p2psync.<name>.tmp``)
is created, filled with blocks each verified against its SHA-256 before it is written
(``block_io.write_if_valid``; ``BlockWrites`` for a big file's fetched blocks), and sealed
with its final size, permissions and mtime. Blocking: call from a worker thread."""

from __future__ import annotations

from ...errors import FilesystemError, UnsafePathError
from ...fs.base import FileStat, WriteHandle
from ...fs.internal import temp_name
from ...protocol.fileinfo import BlockInfo, FileInfo, FileType
from .base import PullSettings
from .block_io import read_verified, write_if_valid
from .commit import Committer


class Assembler:
    def __init__(self, settings: PullSettings, commit: Committer) -> None:
        self._settings = settings
        self._commit = commit

    def open_temp(self, tmp: str) -> WriteHandle:
        fs = self._settings.fs
        try:
            return fs.open_write(tmp, mode=0o600)
        except (IsADirectoryError, UnsafePathError):
            # something that is not a regular file holds the temp name: clear it once
            st = self._commit.stat_or_none(tmp)
            if st is None or st.type == FileType.FILE:
                raise
            if st.type == FileType.DIRECTORY:
                fs.rmdir(tmp)
            else:
                fs.remove(tmp)
            return fs.open_write(tmp, mode=0o600)

    def open_fresh_temp(self, tmp: str, fi: FileInfo) -> WriteHandle | None:
        """The temp file for ``fi``, created by this call (``O_EXCL``) with ``fi``'s
        permissions, or None if something is there already (an interrupted pull's file:
        ``open_temp`` deals with it). A fresh file needs no check that it is a regular
        file, and at ``seal`` no truncation and, unless the umask took bits away
        (``fresh_mode``), no chmod."""
        try:
            return self._settings.fs.open_write(tmp, exclusive=True, mode=self.mode_for(fi))
        except FileExistsError:
            return None

    def mode_for(self, fi: FileInfo) -> int:
        """The permission bits ``fi`` gets here."""
        return (fi.permissions & 0o777) if self._settings.keeps_permissions(fi) else 0o644

    def fresh_mode(self, fi: FileInfo, handle: WriteHandle, st: FileStat) -> FileStat:
        """``st`` (the stat of a sealed fresh temp file) once its mode is ``mode_for(fi)``:
        the umask may have cleared bits at creation."""
        mode = self.mode_for(fi)
        if st.permissions == mode:
            return st
        handle.chmod(mode)
        return handle.stat()

    def prepare_big(self, handle: WriteHandle, fi: FileInfo) -> None:
        """Before a file is filled: write a big one around the page cache."""
        if fi.size >= self._settings.tunings.bypass_cache_min:
            handle.bypass_cache()  # see fs/direct_io.py; seal() sets the exact size

    def preallocate(self, handle: WriteHandle, fi: FileInfo) -> None:
        """After the local fill: reserve a big file's space when the disk has room.
        Preallocating is faster for big files, but near a full disk it would let the first
        of several parallel files claim space the others could have shared."""
        tunings = self._settings.tunings
        if fi.size < tunings.preallocate_min:
            return
        free = self._settings.fs.free_space()
        if free > tunings.preallocate_room * fi.size + tunings.min_free_bytes:
            self._reserve(handle, fi.size)

    @staticmethod
    def _reserve(handle: WriteHandle, size: int) -> None:
        """The whole file's space up front, so a full disk shows now and not halfway; a
        failed reservation gives back what it took."""
        before = handle.stat().size
        try:
            handle.reserve(size)
        except OSError:
            handle.truncate(before)
            raise

    def seal(self, fi: FileInfo, handle: WriteHandle, *, fresh: bool = False) -> None:
        """Final size, permissions and mtime of a built temp file (before its fsync).
        ``fresh``: the file was created empty with its mode (``open_fresh_temp``) and
        every block of ``fi`` written to it, so it has its final size already if the
        blocks end there; the caller checks its mode (``fresh_mode``)."""
        if not (fresh and _blocks_end(fi) == fi.size):
            handle.truncate(fi.size)
        if not fresh:
            handle.chmod(self.mode_for(fi))
        handle.set_mtime(fi.modified_ns)

    def write_blocks(self, handle: WriteHandle, blocks: list[tuple[BlockInfo, bytes]]) -> bool:
        """Write each verified block; False at the first that fails its hash check."""
        for block, data in blocks:
            if not write_if_valid(handle, block, data):
                return False
        return True

    def partial_temp(self, fi: FileInfo) -> dict[int, bytes]:
        """Verified blocks of a temp file an interrupted pull left behind, by offset."""
        found: dict[int, bytes] = {}
        try:
            with self._settings.fs.open_read(temp_name(fi.name)) as handle:
                size = handle.stat().size
                for block in fi.blocks:
                    if 0 < block.size and block.offset + block.size <= size:
                        data = read_verified(handle, block)
                        if data is not None:
                            found[block.offset] = data
        except (OSError, FilesystemError):
            return {}
        return found


def _blocks_end(fi: FileInfo) -> int:
    """Where ``fi``'s last block ends (0 without blocks)."""
    if not fi.blocks:
        return 0
    last = fi.blocks[-1]
    return last.offset + last.size
