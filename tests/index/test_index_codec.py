"""Name keys sort in code-point order (the scanner's walk order); rows round-trip every FileInfo field."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from index_helpers import make_file

from p2psync.index import codec
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import BlockInfo, FileInfo, FileType, LocalFileInfo

segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00"),
    min_size=1,
    max_size=4,
).filter(lambda s: s not in (".", ".."))
names = st.lists(segment, min_size=1, max_size=4).map("/".join)


@given(st.lists(names, min_size=2, max_size=30, unique=True))
def test_key_order_is_code_point_order(paths: list[str]) -> None:
    assert sorted(paths, key=codec.name_key) == sorted(paths)


@given(names)
def test_name_key_round_trips(name: str) -> None:
    assert codec.key_name(codec.name_key(name)) == name


def walk(root: Path) -> list[str]:
    """Every name under root, in the scanner's walk order."""
    from p2psync.fs.basic import BasicFS
    from p2psync.scanner.walker import Walker

    return [item.name for item in Walker(BasicFS(root), None, []).walk("")]


def test_key_order_matches_a_real_walk(tmp_path: Path) -> None:
    for d in ("a", "a/b", "a b", "a-b", "ab", "Z", "é", "a/b/c"):
        (tmp_path / d).mkdir()
    for f in ("a.txt", "a/b.txt", "a/b-c", "a/b/c/x", "a/b0", "a-b/y", "é/z", "~"):
        (tmp_path / f).write_text("x")
    walked = walk(tmp_path)
    assert sorted(walked, key=codec.name_key) == walked


def test_subtree_range_selects_exactly_the_subtree() -> None:
    all_names = ["a", "a/b", "a/b/c", "a-b", "a.txt", "ab", "a b/x", "b"]
    exact, low, high = codec.subtree_range("a")
    inside = [n for n in all_names if codec.name_key(n) == exact or low < codec.name_key(n) < high]
    assert inside == ["a", "a/b", "a/b/c"]


def test_row_round_trip_all_fields() -> None:
    fi = LocalFileInfo(
        name="dir/ünïcode ✓.bin",
        type=FileType.FILE,
        size=300_000,
        permissions=0o751,
        modified_ns=1_712_345_678_123_456_789,
        modified_by=(1 << 64) - 1,
        deleted=False,
        invalid=True,
        no_permissions=True,
        version=vector.make([((1 << 64) - 1, (1 << 64) - 1), (7, 3)]),
        sequence=(1 << 63) - 1,
        block_size=128 * 1024,
        blocks=(
            BlockInfo(0, 131072, b"a" * 32),
            BlockInfo(131072, 131072, b"b" * 32),
            BlockInfo(262144, 37856, b"c" * 32),
        ),
        symlink_target="",
        inode=(1 << 64) - 1,
        local_flags=5,
    )
    assert codec.row_to_local(codec.file_params(fi)) == fi
    assert codec.row_to_file(codec.file_params(fi)) == fi.as_file_info()
    # a FileInfo (a peer's entry) is stored without bookkeeping
    assert codec.row_to_local(codec.file_params(fi.as_file_info())) == fi.with_(
        inode=0, local_flags=0
    )
    assert isinstance(codec.encode_blocks(fi), bytes)  # the compact layout was used


def test_irregular_blocks_round_trip_explicitly() -> None:
    fi = make_file("x", size=20).with_(
        size=20, blocks=(BlockInfo(0, 5, b"h" * 32), BlockInfo(5, 15, b"short"))
    )
    assert not isinstance(codec.encode_blocks(fi), bytes)
    assert codec.row_to_file(codec.file_params(fi)) == fi


def test_symlink_and_directory_round_trip() -> None:
    link = FileInfo(name="l", type=FileType.SYMLINK, symlink_target="../t", version=((2, 9),))
    folder = FileInfo(name="d", type=FileType.DIRECTORY, permissions=0o700)
    for fi in (link, folder):
        assert codec.row_to_file(codec.file_params(fi)) == fi


def test_equal_vectors_encode_equally() -> None:
    a = vector.make([(5, 1), (2, 3)])
    b = vector.make([(2, 3), (5, 1), (9, 0)])
    assert codec.encode_vector(a) == codec.encode_vector(b)
    assert codec.decode_vector(codec.encode_vector(a)) == a


def test_uint64_signed_conversion() -> None:
    for value in (1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        stored = codec.to_signed(value)
        assert -(1 << 63) <= stored < (1 << 63)
        assert codec.to_unsigned(stored) == value
