"""What a batch of index changes means to a person: created, modified, deleted, renamed.

Pure: the engine hands over ``(before, after)`` pairs of one folder's local entries as it
records them (a scan's batch, a pull's batch); this module turns them into ``Change``
rows for the history log. A deletion and a creation of the same content in one batch
are a rename (the scanner and the puller both see a rename as exactly that pair).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..protocol.fileinfo import FileInfo, FileType, LocalFileInfo

# LocalFileInfo.local_flags bits that say "not a change a user made here or there": an entry
# ignored on this device (1 << 1), refused as not storable here (1 << 2) or left out by
# selective sync (1 << 3). Kept in step
# with scanner.scan.FLAG_IGNORED / FLAG_NOT_SYNCED_HERE (that module imports the engine).
_NOT_A_USER_CHANGE = (1 << 1) | (1 << 2) | (1 << 3)
# sync.overrides.FLAG_RECEIVE_ONLY: a local change a receive-only folder keeps to itself.
_RECEIVE_ONLY = 1 << 0


class Kind(enum.StrEnum):
    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"
    RENAMED_FROM = "renamed from"  # this name went away; ``detail`` is the new name
    RENAMED_TO = "renamed to"  # this name appeared; ``detail`` is the old name
    CONFLICT_COPY = "conflict copy made"
    RESTORED = "restored"
    REFUSED = "refused"  # a change the folder type kept out; ``detail`` says why


class Origin(enum.StrEnum):
    LOCAL = "local"  # found by a scan of this device's folder
    PULLED = "pulled"  # taken from a peer
    USER = "user"  # a command here (restore, keep this one, revert)


@dataclass(frozen=True, slots=True)
class Change:
    folder: str
    name: str
    kind: Kind
    origin: Origin
    device_short: int  # the version vector's last writer (FileInfo.modified_by)
    at_ns: int  # when this device recorded it
    item_type: int = int(FileType.FILE)
    size: int = 0
    modified_ns: int = 0
    content_hash: bytes = b""  # FileInfo.blocks_hash() of the content (files only)
    detail: str = ""


def changes_of(
    folder: str,
    pairs: Iterable[tuple[LocalFileInfo | None, LocalFileInfo]],
    *,
    origin: Origin,
    at_ns: int,
) -> list[Change]:
    """The history rows for one batch of recorded entries (nothing for a refresh)."""
    out: list[Change] = []
    for before, after in pairs:
        kind = _kind(before, after)
        if kind is None:
            continue
        shown = before if kind is Kind.DELETED and before is not None else after
        out.append(
            Change(
                folder=folder,
                name=after.name,
                kind=kind,
                origin=origin,
                device_short=after.modified_by,
                at_ns=at_ns,
                item_type=int(after.type),
                size=0 if shown.deleted else shown.size,
                modified_ns=after.modified_ns,
                content_hash=_content_hash(shown),
                detail=_detail(before, after, kind),
            )
        )
    return pair_renames(out)


SEND_ONLY_REFUSED = "send-only folder: not applied here"


def refusals_of(folder: str, needed: Iterable[FileInfo], *, at_ns: int) -> list[Change]:
    """The history rows of remote changes a send-only folder does not take (``needed``:
    the global versions it needs and refuses), each under the device that made it."""
    return [
        Change(
            folder=folder,
            name=fi.name,
            kind=Kind.REFUSED,
            origin=Origin.PULLED,
            device_short=fi.modified_by,
            at_ns=at_ns,
            item_type=int(fi.type),
            size=0 if fi.deleted else fi.size,
            modified_ns=fi.modified_ns,
            content_hash=_content_hash(fi),
            detail=f"{_what(fi)} on another device; {SEND_ONLY_REFUSED}",
        )
        for fi in needed
    ]


def _what(fi: FileInfo) -> str:
    return "deleted" if fi.deleted else "changed"


def _kind(before: LocalFileInfo | None, after: LocalFileInfo) -> Kind | None:
    if after.local_flags & _RECEIVE_ONLY:
        return Kind.REFUSED  # changed here, not sent: the folder is receive-only
    if after.local_flags & _NOT_A_USER_CHANGE or after.invalid:
        return None
    if before is not None and before.version == after.version:
        return None  # the same version re-recorded (inode refresh, adoption)
    gone_before = before is None or before.deleted or bool(before.local_flags & _NOT_A_USER_CHANGE)
    if after.deleted:
        return None if gone_before else Kind.DELETED
    return Kind.CREATED if gone_before else Kind.MODIFIED


def _detail(before: FileInfo | None, after: FileInfo, kind: Kind) -> str:
    if kind is Kind.REFUSED:
        what = "deleted" if after.deleted else "changed"
        return f"{what} here; receive-only folder: not sent to other devices"
    if kind is not Kind.MODIFIED or before is None:
        return ""
    if before.type != after.type:
        return "type changed"
    if after.is_file and before.blocks == after.blocks:
        return "permissions" if before.permissions != after.permissions else "metadata"
    if after.is_symlink and before.symlink_target == after.symlink_target:
        return "metadata"
    return ""


def _content_hash(fi: FileInfo) -> bytes:
    return fi.blocks_hash() if fi.is_file and fi.blocks and not fi.deleted else b""


def pair_renames(changes: Sequence[Change]) -> list[Change]:
    """Turn a deletion and a creation of the same file content (same size and hash) in
    one batch into "renamed from" / "renamed to"; each deletion pairs at most once."""
    deleted: dict[tuple[int, bytes], list[int]] = {}
    for i, c in enumerate(changes):
        if c.kind is Kind.DELETED and c.content_hash:
            deleted.setdefault((c.size, c.content_hash), []).append(i)
    if not deleted:
        return list(changes)
    out = list(changes)
    for i, c in enumerate(changes):
        if c.kind is not Kind.CREATED or not c.content_hash:
            continue
        candidates = deleted.get((c.size, c.content_hash))
        if not candidates:
            continue
        j = candidates.pop(0)
        gone = changes[j]
        out[j] = _as(gone, Kind.RENAMED_FROM, c.name, c.device_short)
        out[i] = _as(c, Kind.RENAMED_TO, gone.name, c.device_short)
    return out


def _as(c: Change, kind: Kind, detail: str, device_short: int) -> Change:
    return Change(
        c.folder, c.name, kind, c.origin, device_short, c.at_ns, c.item_type, c.size,
        c.modified_ns, c.content_hash, detail,
    )  # fmt: skip
