"""FileInfo.with_ copies slots directly; it must agree with dataclasses.replace, for
FileInfo and for LocalFileInfo (this device's entries, with local bookkeeping)."""

from __future__ import annotations

import dataclasses

import pytest

from p2psync.protocol import vector
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType, LocalFileInfo

WIRE_FIELDS: dict[str, object] = {
    "name": "a/b.txt",
    "type": FileType.FILE,
    "size": 5,
    "permissions": 0o640,
    "modified_ns": 123,
    "modified_by": 7,
    "version": vector.make([(7, 2)]),
    "sequence": 9,
    "block_size": 128 * 1024,
    "blocks": (BlockInfo(0, 5, b"h" * 32),),
}
SAMPLE = FileInfo(**WIRE_FIELDS)  # type: ignore[arg-type]
LOCAL_SAMPLE = LocalFileInfo(**WIRE_FIELDS, inode=11, local_flags=2)  # type: ignore[arg-type]

CHANGES: dict[str, object] = {
    "name": "c",
    "type": FileType.DIRECTORY,
    "size": 6,
    "permissions": 0o700,
    "modified_ns": 456,
    "modified_by": 8,
    "deleted": True,
    "invalid": True,
    "no_permissions": True,
    "version": vector.make([(8, 1)]),
    "sequence": 10,
    "block_size": 0,
    "blocks": (),
    "symlink_target": "t",
}
LOCAL_CHANGES: dict[str, object] = {**CHANGES, "inode": 12, "local_flags": 0}


def test_every_field_can_be_changed() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(FileInfo)}
    assert set(LOCAL_CHANGES) == {f.name for f in dataclasses.fields(LocalFileInfo)}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_one_change_matches_replace(name: str) -> None:
    copy = SAMPLE.with_(**{name: CHANGES[name]})
    assert type(copy) is FileInfo
    assert copy == dataclasses.replace(SAMPLE, **{name: CHANGES[name]})  # type: ignore[arg-type]
    assert copy is not SAMPLE and SAMPLE.sequence == 9  # the original is untouched


@pytest.mark.parametrize("name", sorted(LOCAL_CHANGES))
def test_one_change_of_a_local_entry_matches_replace(name: str) -> None:
    copy = LOCAL_SAMPLE.with_(**{name: LOCAL_CHANGES[name]})
    assert type(copy) is LocalFileInfo
    assert copy == dataclasses.replace(LOCAL_SAMPLE, **{name: LOCAL_CHANGES[name]})  # type: ignore[arg-type]
    assert copy is not LOCAL_SAMPLE and LOCAL_SAMPLE.inode == 11  # the original is untouched


def test_all_changes_and_none() -> None:
    assert SAMPLE.with_(**CHANGES) == FileInfo(**CHANGES)  # type: ignore[arg-type]
    assert SAMPLE.with_() == SAMPLE
    assert LOCAL_SAMPLE.with_(**LOCAL_CHANGES) == LocalFileInfo(**LOCAL_CHANGES)  # type: ignore[arg-type]
    assert LOCAL_SAMPLE.with_() == LOCAL_SAMPLE


def test_the_copy_is_frozen_and_hashable_like_any_fileinfo() -> None:
    for sample in (SAMPLE, LOCAL_SAMPLE):
        copy = sample.with_(size=1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            copy.size = 2  # type: ignore[misc]
        assert hash(copy) == hash(dataclasses.replace(sample, size=1))


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError):
        SAMPLE.with_(colour="red")
    with pytest.raises(TypeError):
        LOCAL_SAMPLE.with_(colour="red")


def test_a_fileinfo_has_no_local_bookkeeping() -> None:
    for name in ("inode", "local_flags"):
        with pytest.raises(TypeError):
            SAMPLE.with_(**{name: 1})
        assert not hasattr(SAMPLE, name)


def test_a_fileinfo_becomes_a_local_entry_and_back() -> None:
    local = SAMPLE.as_local(inode=11, local_flags=2)
    assert type(local) is LocalFileInfo and local == LOCAL_SAMPLE
    assert SAMPLE.as_local() == LocalFileInfo(**WIRE_FIELDS)  # type: ignore[arg-type]
    wire = LOCAL_SAMPLE.as_file_info()
    assert type(wire) is FileInfo and wire == SAMPLE
    # a local entry made local again takes the bookkeeping given, not its own
    assert LOCAL_SAMPLE.as_local(inode=3) == LOCAL_SAMPLE.with_(inode=3, local_flags=0)
