"""The selective-sync rule (p2psync/selection.py): which names a device keeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2psync.errors import ConfigError
from p2psync.selection import added, follow_renames, is_selected, narrowed, normalize, renamed

segment = st.sampled_from(["a", "b", "docs", "photos", "é", "x y"])
path = st.lists(segment, min_size=1, max_size=4).map("/".join)
selection = st.lists(path, max_size=4).map(normalize)


def test_examples() -> None:
    sel = ("docs", "photos/2024")
    assert is_selected("docs", sel)
    assert is_selected("docs/a/b.txt", sel)
    assert is_selected("photos", sel)  # holds a selected path
    assert is_selected("photos/2024/x.jpg", sel)
    assert not is_selected("photos/2023", sel)
    assert not is_selected("docsx", sel)
    assert not is_selected("music/m.mp3", sel)
    assert is_selected("anything", ())


def test_normalize() -> None:
    assert normalize(["/docs/", "docs/sub", "photos"]) == ("docs", "photos")
    assert normalize(["e\u0301"]) == ("\u00e9",)  # NFC
    assert normalize([]) == ()
    for bad in ["..", "a/../b", "", "/", ".p2psync", ".p2pversions/x", "a\\b"]:
        with pytest.raises(ConfigError):
            normalize([bad])


@given(selection, path)
def test_a_name_under_a_selected_name_is_selected_unless_it_is_an_ancestor(
    sel: tuple[str, ...], name: str
) -> None:
    parent = name.rpartition("/")[0]
    if is_selected(name, sel) and parent:
        assert is_selected(parent, sel)  # ancestors exist to hold it


@given(selection, path)
def test_everything_under_a_selected_path_is_selected(sel: tuple[str, ...], name: str) -> None:
    for p in sel:
        assert is_selected(f"{p}/{name}", sel)
        assert is_selected(p, sel)


@given(selection)
def test_normalize_is_idempotent(sel: tuple[str, ...]) -> None:
    assert normalize(sel) == sel


@given(selection, selection, path)
def test_added_and_narrowed_agree_with_is_selected(
    old: tuple[str, ...], new: tuple[str, ...], name: str
) -> None:
    if is_selected(name, new) and not is_selected(name, old):
        assert added(old, new)
    if is_selected(name, old) and not is_selected(name, new):
        assert narrowed(old, new)


def test_renamed() -> None:
    assert renamed(("docs", "music"), "docs", "papers") == ("music", "papers")
    assert renamed(("docs/a",), "docs", "p") == ("p/a",)
    assert renamed(("docsx",), "docs", "p") == ("docsx",)


def test_follow_renames() -> None:
    gone = {"docs": None, "docs/a.txt": b"", "docs/sub": None, "docs/sub/b.txt": b""}
    new = {"papers": None, "papers/a.txt": b"", "papers/sub": None, "papers/sub/b.txt": b""}
    assert follow_renames(("docs", "music"), gone, new) == ("music", "papers")
    # not the same entries, or two candidates: the selection stays
    assert follow_renames(("docs",), gone, {"papers": None, "papers/a.txt": b""}) == ("docs",)
    twice = {**new, "other": None, "other/a.txt": b"", "other/sub": None, "other/sub/b.txt": b""}
    assert follow_renames(("docs",), gone, twice) == ("docs",)
    assert follow_renames(("docs",), {"docs/a.txt": b""}, new) == ("docs",)  # dir still there
