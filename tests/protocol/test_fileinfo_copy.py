"""FileInfo.with_ copies slots directly; it must agree with dataclasses.replace."""

from __future__ import annotations

import dataclasses

import pytest

from p2psync.protocol import vector
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType

SAMPLE = FileInfo(
    name="a/b.txt",
    type=FileType.FILE,
    size=5,
    permissions=0o640,
    modified_ns=123,
    modified_by=7,
    version=vector.make([(7, 2)]),
    sequence=9,
    block_size=128 * 1024,
    blocks=(BlockInfo(0, 5, b"h" * 32),),
    inode=11,
    local_flags=2,
)

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
    "inode": 12,
    "local_flags": 0,
}


def test_every_field_can_be_changed() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(FileInfo)}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_one_change_matches_replace(name: str) -> None:
    copy = SAMPLE.with_(**{name: CHANGES[name]})
    assert copy == dataclasses.replace(SAMPLE, **{name: CHANGES[name]})  # type: ignore[arg-type]
    assert copy is not SAMPLE and SAMPLE.sequence == 9  # the original is untouched


def test_all_changes_and_none() -> None:
    assert SAMPLE.with_(**CHANGES) == FileInfo(**CHANGES)  # type: ignore[arg-type]
    assert SAMPLE.with_() == SAMPLE


def test_the_copy_is_frozen_and_hashable_like_any_fileinfo() -> None:
    copy = SAMPLE.with_(size=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.size = 2  # type: ignore[misc]
    assert hash(copy) == hash(dataclasses.replace(SAMPLE, size=1))


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError):
        SAMPLE.with_(colour="red")
