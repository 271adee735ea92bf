"""p2psync's own names (ignore file, versions archive, folder marker, temp files) are
recognised in any case and Unicode spelling: on a case-insensitive filesystem
(``FakeFS(case_insensitive=True)``) a peer's ``.P2PIGNORE`` would *be* the device's
``.p2pignore``, and ``.P2PVERSIONS/x`` would land in the versions archive."""

from __future__ import annotations

import unicodedata

import pytest
from pull_support import make_puller, remote_file, source_for

from p2psync.fs import FakeFS, FileSystem, write_all
from p2psync.fs.internal import fold, is_internal, is_internal_entry, is_temp_base
from p2psync.index import IndexStore
from p2psync.scanner.scan import scan
from p2psync.sync.pull import ItemSkipped

HOSTILE = {
    ".P2PIGNORE": b"*\n",
    ".P2PVERSIONS/planted.txt": b"planted in the archive",
    ".P2PSync/evil": b"inside the folder marker",
    "d/.P2PSYNC.x.TMP": b"a temp file name",
}


@pytest.mark.parametrize(
    "name",
    [
        ".P2PIGNORE",
        ".P2pIgnore",
        ".p2p\u0131gnore",  # dotless i: upper-cases to I (Windows' upcase table)
        ".P2PVERSIONS",
        ".P2PVersions/a/b.txt",
        ".P2PSYNC",
        ".p2p\u017fync/x",  # long s: case-folds to s
        "a/b/.P2PSYNC.name.TMP",
        unicodedata.normalize("NFD", ".P2PSYNC.\u00e9.TMP"),
    ],
)
def test_internal_names_match_in_any_case(name: str) -> None:
    assert is_internal(name)


@pytest.mark.parametrize(
    ("parent", "base"),
    [("", ".P2PIGNORE"), ("", ".P2PVersions"), ("", ".p2p\u017fync"), ("a/b", ".P2PSYNC.n.TMP")],
)
def test_walked_entries_match_in_any_case(parent: str, base: str) -> None:
    assert is_internal_entry(parent, base)
    assert not is_internal_entry("sub", ".P2PIGNORE")


@pytest.mark.parametrize(
    "name", ["P2PIGNORE", "dir/.P2PIGNORE", "sub/.p2pversions/x", ".p2pignorex", "a.txt", ".x"]
)
def test_other_names_are_not_internal(name: str) -> None:
    assert not is_internal(name)


def test_temp_base_in_any_case() -> None:
    assert is_temp_base(".P2PSYNC.report.TMP")
    assert not is_temp_base(".P2PSYNC.report.txt")


def put(fs: FileSystem, name: str, data: bytes) -> None:
    parent = name.rpartition("/")[0]
    if parent:
        fs.makedirs(parent)
    write_all(fs, name, data)


def read(fs: FileSystem, name: str) -> bytes:
    with fs.open_read(name) as h:
        return h.read_at(0, 1 << 20)


def device_state(fs: FakeFS) -> dict[str, bytes]:
    put(fs, ".p2pignore", b"# my own ignore patterns\n")
    fs.mkdir(".p2psync")
    put(fs, ".p2pversions/old.txt", b"an archived version")
    return {".p2pignore": read(fs, ".p2pignore"), ".p2pversions/old.txt": b"an archived version"}


def assert_untouched(fs: FakeFS, before: dict[str, bytes]) -> None:
    for name, data in before.items():
        assert read(fs, name) == data, name
    assert [e.name for e in fs.scandir(".p2pversions")] == ["old.txt"]
    assert fs.scandir(".p2psync") == []


async def test_puller_refuses_internal_names_on_case_insensitive_fs(index: IndexStore) -> None:
    fs = FakeFS(case_insensitive=True)
    before = device_state(fs)
    puller = make_puller(fs, index, source_for(HOSTILE))
    for name, data in HOSTILE.items():
        with pytest.raises(ItemSkipped):
            await puller.pull_item(remote_file(name, data))
    assert_untouched(fs, before)


def test_scanner_skips_internal_names_in_any_case() -> None:
    """A user's ``.P2PIgnore`` on a case-insensitive disk is the device's ignore file:
    it must not be announced as user data (nor anything else folding to our names)."""
    fs = FakeFS(case_insensitive=True)
    for name, data in {**HOSTILE, "ok.txt": b"ok"}.items():
        put(fs, name, data)

    class View:
        def get_local(self, name: str) -> None:
            return None

        def iter_local(self, prefix: str = "") -> list[object]:
            return []

    names = {fi.name for batch in scan(fs, View(), short_id=1, now=lambda: 1) for fi in batch.files}
    assert names == {"ok.txt", "d"}


def test_only_ascii_letters_fold_into_the_reserved_prefix() -> None:
    """The cheap reject in fs.internal (a name without ``.p2p`` in ASCII, any case, is
    not ours) holds only if no other character folds to ".", "2" or "p"."""
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        folded = fold(chr(cp))
        assert "." not in folded and "2" not in folded and "p" not in folded, hex(cp)
