"""The pure part of the history: which rows a batch of recorded local entries makes."""

from __future__ import annotations

from p2psync.history.changes import Change, Kind, Origin, changes_of
from p2psync.protocol.fileinfo import BlockInfo, FileType, LocalFileInfo
from p2psync.protocol.vector import make

A, B = 0xAAAA, 0xBBBB


def _file(name: str, content: bytes, v: list[tuple[int, int]], by: int = A, **kw) -> LocalFileInfo:
    blocks = (BlockInfo(0, len(content), content.ljust(32, b"\0")[:32]),) if content else ()
    return LocalFileInfo(
        name, size=len(content), blocks=blocks, block_size=128 * 1024, version=make(v),
        modified_by=by, **kw,
    )  # fmt: skip


def _rows(pairs, origin=Origin.LOCAL) -> list[Change]:
    return changes_of("f", pairs, origin=origin, at_ns=123)


def test_created_modified_deleted() -> None:
    v1 = _file("a.txt", b"one", [(A, 1)])
    v2 = _file("a.txt", b"two!", [(A, 1), (B, 1)], by=B)
    gone = v2.with_(deleted=True, blocks=(), size=0, version=make([(A, 2), (B, 1)]), modified_by=A)
    rows = _rows([(None, v1), (v1, v2), (v2, gone)])
    assert [(r.kind, r.device_short, r.size) for r in rows] == [
        (Kind.CREATED, A, 3),
        (Kind.MODIFIED, B, 4),
        (Kind.DELETED, A, 4),  # the size and hash of what was deleted
    ]
    assert rows[2].content_hash == v2.blocks_hash() and rows[0].at_ns == 123


def test_a_refresh_and_a_deletion_of_nothing_make_no_row() -> None:
    v1 = _file("a.txt", b"one", [(A, 1)])
    tomb = LocalFileInfo("b.txt", deleted=True, version=make([(A, 1)]))
    assert _rows([(v1, v1.with_(inode=7)), (None, tomb), (tomb, tomb.with_(sequence=9))]) == []


def test_ignored_and_not_synced_entries_are_not_changes() -> None:
    v1 = _file("a.txt", b"one", [(A, 1)])
    ignored = v1.with_(version=make([(A, 2)]), local_flags=1 << 1, invalid=True)
    refused = _file("b.txt", b"x", [(B, 1)], by=B, local_flags=1 << 2)
    assert _rows([(v1, ignored), (None, refused)]) == []


def test_a_file_coming_back_after_a_delete_is_created() -> None:
    tomb = LocalFileInfo("a.txt", deleted=True, version=make([(A, 2)]))
    back = _file("a.txt", b"again", [(A, 3)])
    assert [r.kind for r in _rows([(tomb, back)])] == [Kind.CREATED]


def test_metadata_only_changes_say_so() -> None:
    v1 = _file("a.txt", b"one", [(A, 1)])
    perms = v1.with_(permissions=0o600, version=make([(A, 2)]))
    touched = perms.with_(modified_ns=5, version=make([(A, 3)]))
    rows = _rows([(v1, perms), (perms, touched)])
    assert [(r.kind, r.detail) for r in rows] == [
        (Kind.MODIFIED, "permissions"),
        (Kind.MODIFIED, "metadata"),
    ]


def test_a_delete_and_a_create_of_the_same_content_are_a_rename() -> None:
    old = _file("docs/q1.pdf", b"report", [(A, 1)])
    gone = old.with_(deleted=True, blocks=(), size=0, version=make([(A, 2)]))
    new = _file("archive/q1.pdf", b"report", [(A, 3)])
    other = _file("other.txt", b"report2", [(A, 4)])
    rows = _rows([(old, gone), (None, new), (None, other)])
    assert [(r.name, r.kind, r.detail) for r in rows] == [
        ("docs/q1.pdf", Kind.RENAMED_FROM, "archive/q1.pdf"),
        ("archive/q1.pdf", Kind.RENAMED_TO, "docs/q1.pdf"),
        ("other.txt", Kind.CREATED, ""),
    ]


def test_two_copies_of_one_deleted_file_pair_once() -> None:
    old = _file("a", b"same", [(A, 1)])
    gone = old.with_(deleted=True, blocks=(), size=0, version=make([(A, 2)]))
    rows = _rows(
        [(old, gone), (None, _file("b", b"same", [(A, 3)])), (None, _file("c", b"same", [(A, 4)]))]
    )
    assert [r.kind for r in rows] == [Kind.RENAMED_FROM, Kind.RENAMED_TO, Kind.CREATED]


def test_directories_and_symlinks() -> None:
    d = LocalFileInfo("d", FileType.DIRECTORY, version=make([(B, 1)]), modified_by=B)
    link = LocalFileInfo(
        "l", FileType.SYMLINK, symlink_target="d", version=make([(B, 1)]), modified_by=B
    )
    relinked = link.with_(symlink_target="e", version=make([(B, 2)]))
    rows = _rows([(None, d), (None, link), (link, relinked)], origin=Origin.PULLED)
    assert [(r.kind, r.item_type, r.content_hash, r.detail) for r in rows] == [
        (Kind.CREATED, int(FileType.DIRECTORY), b"", ""),
        (Kind.CREATED, int(FileType.SYMLINK), b"", ""),
        (Kind.MODIFIED, int(FileType.SYMLINK), b"", ""),
    ]
    assert {r.origin for r in rows} == {Origin.PULLED}


def test_a_receive_only_folder_records_what_it_keeps_to_itself() -> None:
    v1 = _file("a.txt", b"one", [(A, 1)])
    local = v1.with_(version=make([(A, 1), (B, 1)]), modified_by=B, local_flags=1, invalid=True)
    gone = local.with_(deleted=True, blocks=(), size=0, version=make([(A, 1), (B, 2)]))
    rows = _rows([(v1, local), (local, gone)])
    assert [(r.kind, r.detail) for r in rows] == [
        (Kind.REFUSED, "changed here; receive-only folder: not sent to other devices"),
        (Kind.REFUSED, "deleted here; receive-only folder: not sent to other devices"),
    ]
