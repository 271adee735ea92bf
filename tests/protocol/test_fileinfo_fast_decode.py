"""Decoding a FileInfo takes a fast path for entries that pass every check; it must accept
exactly what the checked path accepts and build the same FileInfo, whatever is wrong."""

from __future__ import annotations

import random
from typing import Any

import pytest

from p2psync.protocol import limits as L
from p2psync.protocol import wire_fileinfo
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType
from p2psync.protocol.validate import Invalid

FIELDS = list(wire_fileinfo._FILE_KEYS)

# Values a field may be replaced with: right and wrong types, edges of every range.
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    4,
    5,
    7,
    L.INT32_MAX,
    L.INT32_MAX + 1,
    L.INT64_MAX,
    L.INT64_MAX + 1,
    L.INT64_MIN,
    L.INT64_MIN - 1,
    L.UINT32_MAX,
    L.UINT32_MAX + 1,
    L.UINT64_MAX,
    L.UINT64_MAX + 1,
    1.5,
    "",
    "a",
    "a/b",
    "../x",
    "x\x00y",
    "\udcff",
    "é" * 200,
    b"",
    b"x" * 32,
    [],
    (),
    {},
    [[1, 1]],
    [[2, 1], [1, 1]],
    [[1, 1], [1, 2]],
    [[1, 0]],
    [[1, 1, 1]],
    [[True, 1]],
    [[0, b"x" * 32]],
    [[0, 10, b"x" * 32]],
    [[0, 10, b"x" * 31]],
    [(0, 10, b"x" * 32)],
    [[0, -1, b"x" * 32]],
]


def valid_plain(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice([FileType.FILE, FileType.DIRECTORY, FileType.SYMLINK])
    size = rng.choice([0, 1, 1000, 128 * 1024, 300_000]) if kind == FileType.FILE else 0
    block = 128 * 1024
    blocks = (
        tuple(BlockInfo(o, min(block, size - o), rng.randbytes(32)) for o in range(0, size, block))
        if kind == FileType.FILE
        else ()
    )
    fi = FileInfo(
        name=rng.choice(["a", "dir/b.txt", "ü/ñ", "x" * 100]),
        type=kind,
        size=size,
        permissions=rng.choice([0o644, 0o755, 0]),
        modified_ns=rng.randrange(L.INT64_MIN, L.INT64_MAX),
        modified_by=rng.randrange(0, L.UINT64_MAX),
        deleted=False,
        invalid=rng.random() < 0.1,
        no_permissions=rng.random() < 0.1,
        version=tuple(
            wire_fileinfo.Counter(i + 1, rng.randrange(1, 9)) for i in range(rng.randrange(1, 4))
        ),
        sequence=rng.randrange(0, 1000),
        block_size=block if kind == FileType.FILE else 0,
        blocks=blocks,
        symlink_target="target" if kind == FileType.SYMLINK else "",
    )
    return wire_fileinfo.file_info_to_plain(fi)


def checked(plain: Any) -> FileInfo | str:
    try:
        fi = wire_fileinfo._file_info_checked(plain, "f")
    except Invalid as exc:
        return f"Invalid: {exc}"
    return fi


def decoded(plain: Any) -> FileInfo | str:
    try:
        return wire_fileinfo.file_info_from_plain(plain, "f")
    except Invalid as exc:
        return f"Invalid: {exc}"


@pytest.mark.parametrize("seed", range(8))
def test_the_fast_path_agrees_with_the_checked_one(seed: int) -> None:
    rng = random.Random(seed)
    fast_hits = valid = 0
    for _ in range(1500):
        plain = valid_plain(rng)
        for _ in range(rng.choice([0, 1, 1, 2])):  # spoil some fields
            field = rng.choice(FIELDS)
            if rng.random() < 0.1:
                plain.pop(field, None)
            else:
                plain[field] = rng.choice(ODD_VALUES)
        if rng.random() < 0.02:
            plain = [plain]  # not a map at all
        if rng.random() < 0.02 and isinstance(plain, dict):
            plain.update({f"extra{i}": i for i in range(L.MAX_STRUCT_KEYS)})  # too many keys
        want = checked(plain)
        assert decoded(plain) == want, plain
        if not isinstance(want, str):
            valid += 1
            fast_hits += wire_fileinfo._file_info_fast(plain) is not None
    assert valid > 200 and fast_hits == valid  # every valid entry took the fast path
