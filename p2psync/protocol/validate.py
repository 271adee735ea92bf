"""Consistency rules for a FileInfo, applied to everything that crosses the wire.

``wire_schema.py`` has already checked types and ranges; these rules check that the fields
agree with each other, so nothing inconsistent reaches the index or the puller. They
raise ``Invalid`` with a precise reason; the codec turns it into RemoteProtocolError
(decoding) or LocalProtocolError (encoding). ``Invalid`` never leaves the protocol package.
"""

from __future__ import annotations

import hashlib

from ..errors import UnsafePathError
from .fileinfo import HASH_SIZE, MAX_BLOCK_SIZE, FileInfo, FileType, is_legal_block_size
from .names import validate_name

EMPTY_BLOCK_HASH = hashlib.sha256(b"").digest()


class Invalid(ValueError):
    """A value does not follow the wire rules; ``path`` says where (e.g. files[3].name)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def check_name(name: str, path: str) -> None:
    try:
        validate_name(name)
    except UnsafePathError as exc:
        raise Invalid(path, str(exc)) from None


def check_file_info(fi: FileInfo, path: str = "file") -> None:
    """Raise Invalid unless ``fi``'s fields are consistent with each other."""
    check_name(fi.name, f"{path}.name")
    if not fi.version and not fi.invalid:
        raise Invalid(f"{path}.version", "a valid entry needs a non-empty version vector")
    if fi.type != FileType.SYMLINK and fi.symlink_target:
        raise Invalid(f"{path}.symlink_target", f"a {fi.type.name.lower()} has no symlink target")
    if fi.deleted:
        if fi.blocks:
            raise Invalid(f"{path}.blocks", "a deleted entry has no blocks")
        _check_optional_block_size(fi, path)
        return
    if fi.type == FileType.DIRECTORY:
        _check_no_content(fi, path, "directory")
    elif fi.type == FileType.SYMLINK:
        _check_no_content(fi, path, "symlink")
        if not fi.symlink_target and not fi.invalid:
            raise Invalid(f"{path}.symlink_target", "a symlink needs a target")
    elif not fi.blocks and fi.invalid:
        _check_optional_block_size(fi, path)  # an invalid file may omit its blocks
    else:
        check_blocks(fi, path)


def _check_no_content(fi: FileInfo, path: str, what: str) -> None:
    if fi.blocks:
        raise Invalid(f"{path}.blocks", f"a {what} has no blocks")
    if fi.size != 0:
        raise Invalid(f"{path}.size", f"a {what} has size 0, not {fi.size}")
    _check_optional_block_size(fi, path)


def _check_optional_block_size(fi: FileInfo, path: str) -> None:
    if fi.block_size != 0 and not is_legal_block_size(fi.block_size):
        raise Invalid(f"{path}.block_size", f"{fi.block_size} is not a legal block size")


def check_blocks(fi: FileInfo, path: str) -> None:
    """Blocks tile the file: block i starts at i*block_size, all but the last are full."""
    bs = fi.block_size
    if not is_legal_block_size(bs):
        raise Invalid(
            f"{path}.block_size",
            f"{bs} is not a power of two from 128 KiB to {MAX_BLOCK_SIZE // (1024 * 1024)} MiB",
        )
    blocks = fi.blocks
    if not blocks:
        raise Invalid(
            f"{path}.blocks", "a file has at least one block (an empty file: one of size 0)"
        )
    last = len(blocks) - 1
    for i, b in enumerate(blocks):
        if b.offset != i * bs:
            raise Invalid(f"{path}.blocks[{i}].offset", f"expected {i * bs}, got {b.offset}")
        if len(b.hash) != HASH_SIZE:
            raise Invalid(
                f"{path}.blocks[{i}].hash", f"expected {HASH_SIZE} bytes, got {len(b.hash)}"
            )
        if i < last:
            if b.size != bs:
                raise Invalid(
                    f"{path}.blocks[{i}].size",
                    f"only the last block may be short: {b.size} != {bs}",
                )
        elif not (0 < b.size <= bs or (last == 0 and b.size == 0)):
            raise Invalid(f"{path}.blocks[{i}].size", f"{b.size} not in 1..{bs}")
    end = blocks[last].offset + blocks[last].size
    if end != fi.size:
        raise Invalid(f"{path}.size", f"size {fi.size} but the blocks cover {end} bytes")
    if fi.size == 0 and blocks[0].hash != EMPTY_BLOCK_HASH:
        raise Invalid(f"{path}.blocks[0].hash", "an empty file's block must hash to SHA-256('')")
