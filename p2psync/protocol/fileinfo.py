"""The data model shared by every layer: FileInfo and BlockInfo (mirroring BEP), and
LocalFileInfo, this device's own entry with the bookkeeping that never leaves it."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Any, NamedTuple, Self

from .vector import EMPTY, Vector

MIN_BLOCK_SIZE = 128 * 1024
MAX_BLOCK_SIZE = 16 * 1024 * 1024
# Syncthing's rule, to the block: the same content scanned on a p2psync node and on a
# Syncthing device (a folder seeded on both before they first connect) must have the same
# block list, or the two versions are taken for a conflict. Finer blocks (4,096 a file,
# until December 2026) saved 0.7 MiB on a 1 MiB edit of a 1 GiB file; not worth that.
DESIRED_BLOCKS_PER_FILE = 2000
HASH_SIZE = 32


class FileType(enum.IntEnum):
    FILE = 0
    DIRECTORY = 1
    SYMLINK = 4  # BEP's value for SYMLINK


@dataclass(frozen=True, slots=True)
class BlockInfo:
    offset: int
    size: int
    hash: bytes  # SHA-256 of the block's bytes


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One item of a folder as a device knows it: what peers exchange and what the
    global view holds (this device's own entries are LocalFileInfo).

    ``name`` is folder-relative, ``/``-separated, NFC. ``modified_ns`` is the
    modification time in nanoseconds since the epoch (BEP splits it into s + ns).
    """

    name: str
    type: FileType = FileType.FILE
    size: int = 0
    permissions: int = 0o644
    modified_ns: int = 0
    modified_by: int = 0  # short ID of the device that made the change
    deleted: bool = False
    invalid: bool = False
    no_permissions: bool = False
    version: Vector = EMPTY
    sequence: int = 0
    block_size: int = 0
    blocks: tuple[BlockInfo, ...] = field(default=())
    symlink_target: str = ""

    @property
    def is_file(self) -> bool:
        return self.type == FileType.FILE

    @property
    def is_directory(self) -> bool:
        return self.type == FileType.DIRECTORY

    @property
    def is_symlink(self) -> bool:
        return self.type == FileType.SYMLINK

    def with_(self, **changes: object) -> Self:
        """A copy of the same type with ``changes`` (field names as in the constructor).
        Copies the slots directly: ``dataclasses.replace`` cost twice as much, and every
        scanned, stored or pulled entry goes through here at least once."""
        cls = type(self)
        names, get_all, setters = _FIELDS[cls]
        if not names.issuperset(changes):
            return replace(self, **changes)  # type: ignore[arg-type]  # raises TypeError
        new = _new(cls)
        for set_slot, value in zip(setters, get_all(self), strict=True):
            set_slot(new, value)
        for name, value in changes.items():
            _set(new, name, value)
        return new

    def as_local(self, *, inode: int = 0, local_flags: int = 0) -> LocalFileInfo:
        """This entry as this device's own, with the given bookkeeping (a
        LocalFileInfo's own ``inode`` and ``local_flags`` are not kept)."""
        new = _new(LocalFileInfo)
        _copy_file_info_fields(self, new)
        _set(new, "inode", inode)
        _set(new, "local_flags", local_flags)
        return new

    def blocks_hash(self) -> bytes:
        """A digest over the block hashes: equal content has an equal value."""
        import hashlib

        h = hashlib.sha256()
        for b in self.blocks:
            h.update(b.hash)
        return h.digest()


@dataclass(frozen=True, slots=True)
class LocalFileInfo(FileInfo):
    """This device's own entry for an item: what the scanner produces and the index
    stores for the local device, with bookkeeping that is never sent to a peer (peers
    get ``as_file_info()``). A FileInfo from a peer or from the global view never has
    these fields."""

    inode: int = 0  # what the scanner saw on disk; 0 when unknown
    local_flags: int = 0  # FLAG_* bits of scanner/scan.py and sync/overrides.py

    def as_file_info(self) -> FileInfo:
        """The entry as peers see it: a plain FileInfo, the local bookkeeping dropped."""
        new = _new(FileInfo)
        _copy_file_info_fields(self, new)
        return new


def block_size_for(file_size: int, current: int = 0) -> int:
    """The smallest power of two in [128 KiB, 16 MiB] giving fewer than 2000 blocks
    (Syncthing's ``BlockSize``). Keep ``current`` if it is within a factor of two of
    ideal, so a file's block size stays stable across small changes (Syncthing too)."""
    size = MIN_BLOCK_SIZE
    while size < MAX_BLOCK_SIZE and file_size >= size * DESIRED_BLOCKS_PER_FILE:
        size *= 2
    if is_legal_block_size(current) and size // 2 <= current <= size * 2:
        return current
    return size


def is_legal_block_size(size: int) -> bool:
    return MIN_BLOCK_SIZE <= size <= MAX_BLOCK_SIZE and size & (size - 1) == 0


class _Fields(NamedTuple):
    """What copying an instance of a class takes, field by field."""

    names: frozenset[str]
    get_all: Callable[[Any], tuple[Any, ...]]  # every field's value, in order
    setters: tuple[Callable[[Any, Any], None], ...]  # each field's slot, in order

    @classmethod
    def of(cls, klass: type[FileInfo]) -> _Fields:
        names = tuple(f.name for f in fields(klass))
        # a slot's own setter skips the frozen dataclass's __setattr__ and the name lookup
        setters = tuple(getattr(klass, name).__set__ for name in names)
        return cls(frozenset(names), attrgetter(*names), setters)


_FIELDS = {klass: _Fields.of(klass) for klass in (FileInfo, LocalFileInfo)}
_new = object.__new__
_set = object.__setattr__


def _copy_file_info_fields(source: FileInfo, target: FileInfo) -> None:
    """Set ``target``'s FileInfo fields (a new, empty instance) to ``source``'s."""
    _, get_all, setters = _FIELDS[FileInfo]
    for set_slot, value in zip(setters, get_all(source), strict=True):
        set_slot(target, value)
