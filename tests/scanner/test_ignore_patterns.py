"""`.p2pignore` parsing and matching (Syncthing `.stignore` semantics)."""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psync.errors import ConfigError
from p2psync.scanner.ignore import IGNORE_FILE_NAME, Ignore, IgnoreError, Match

# (pattern lines, name, expected ignored, 1-based line of the deciding pattern or None)
CASES: list[tuple[str, str, bool, int | None]] = [
    # plain names match at any depth, and as directories with everything below
    ("foo", "foo", True, 1),
    ("foo", "sub/foo", True, 1),
    ("foo", "sub/deeper/foo", True, 1),
    ("foo", "foofoo", False, None),
    ("foo", "foo/child.txt", True, 1),
    ("foo", "a/foo/b/c", True, 1),
    ("foo", "xfoo/bar", False, None),
    # a pattern with a '/' inside is unanchored too (Syncthing adds **/)
    ("foo/bar", "x/foo/bar", True, 1),
    ("foo/bar", "foo/bar/baz", True, 1),
    ("foo/bar", "foo/barx", False, None),
    # anchored
    ("/foo", "foo", True, 1),
    ("/foo", "sub/foo", False, None),
    ("/foo", "foo/inner", True, 1),
    ("/a/b", "a/b", True, 1),
    ("/a/b", "x/a/b", False, None),
    # * does not cross '/'
    ("te*st", "test", True, 1),
    ("te*st", "subdir/telerest", True, 1),
    ("te*st", "tele/rest", False, None),
    ("*.txt", "docs/readme.txt", True, 1),
    ("/*.txt", "docs/readme.txt", False, None),
    # ** crosses '/': at start, middle, end
    ("te**st", "tele/sub/dir/rest", True, 1),
    ("**/cache", "cache", True, 1),
    ("**/cache", "a/b/cache", True, 1),
    ("/a/**/z", "a/b/c/z", True, 1),
    ("/a/**/z", "a/z", False, None),  # Syncthing: '**' between slashes needs a directory
    ("/a/**", "a/x/y", True, 1),
    ("/a/**", "a", False, None),
    ("/build**", "build-output/x/y", True, 1),
    # ?
    ("te??st", "tebest", True, 1),
    ("te??st", "teb/st", False, None),
    ("te??st", "test", False, None),
    # character classes and ranges
    ("file[0-9].log", "file7.log", True, 1),
    ("file[0-9].log", "filex.log", False, None),
    ("file[!0-9].log", "filex.log", True, 1),
    ("file[^0-9].log", "file5.log", False, None),
    ("[abc]", "b", True, 1),
    ("a[!x]b", "a/b", False, None),  # a negated class never matches '/'
    ("x[-z]", "x-", True, 1),
    # {a,b} alternation, nested, holding globs
    ("{banana,pineapple}", "pineapple", True, 1),
    ("{banana,pineapple}", "apple", False, None),
    ("*.{jpg,png}", "pics/a.png", True, 1),
    ("/{src,lib/{x,y}}/*.o", "lib/y/m.o", True, 1),
    ("/{src,lib/{x,y}}/*.o", "lib/z/m.o", False, None),
    # escaping (Linux)
    (r"\{banana\}", "{banana}", True, 1),
    (r"\{banana\}", "banana", False, None),
    (r"\*", "*", True, 1),
    (r"\*", "x", False, None),
    (r"a\?", "a?", True, 1),
    (r"a\?", "ab", False, None),
    (r"\[x\]", "[x]", True, 1),
    (r"\!important", "!important", True, 1),
    (r"\#include", "#include", True, 1),
    # a trailing '/' matches the contents only
    ("logs/", "logs", False, None),
    ("logs/", "logs/today.txt", True, 1),
    ("logs/", "var/logs/today.txt", True, 1),
    # negation, first match wins
    ("!keep.txt\n*.txt", "keep.txt", False, 1),
    ("!keep.txt\n*.txt", "other.txt", True, 2),
    ("*.txt\n!keep.txt", "keep.txt", True, 1),  # later negation never reached
    ("!quuz\nqu*", "bar/quuz", False, 1),
    ("!quuz\nqu*", "bar/quux", True, 2),
    ("!frobble\n*2", "bar2", True, 2),
    ("!frobble\n*2", "bar2/frobble", False, 1),
    ("!frobble\n*2", "bar2/baz", True, 2),
    ("!/foo\n*", "foo", False, 1),
    ("!/foo\n*", "bar", True, 2),
    # case sensitivity only with (?i)
    ("test", "TEST", False, None),
    ("(?i)test", "TEST", True, 1),
    ("(?i)test", "sub/TeSt/x", True, 1),
    ("(?i)my pictures", "My Pictures/Img15.PNG", True, 1),
    ("(?i)!picture*.png\n*", "Picture1.PNG", False, 1),
    ("!(?i)picture*.png\n*", "Picture1.PNG", False, 1),
    ("(?i)[a-c]x", "Bx", True, 1),
    # prefixes combine in any order; '(?di)' is not a prefix
    ("(?d)(?i).DS_Store", ".ds_store", True, 1),
    ("(?i)(?d).DS_Store", "a/.DS_STORE", True, 1),
    ("(?di)foo", "foo", False, None),
    # unicode names (NFC)
    ("café", "menu/café", True, 1),
    ("caf?", "café", True, 1),
    ("(?i)ÉTÉ", "été", True, 1),
    ("日本*", "docs/日本語.txt", True, 1),
    (unicodedata.normalize("NFD", "café"), "café", True, 1),  # pattern normalised to NFC
    # comments, blank lines, whitespace, duplicates
    ("// foo\n\n   \nbar", "foo", False, None),
    ("// foo\n\n   \nbar", "bar", True, 4),
    ("   spaced name   ", "spaced name", True, 1),
    ("name\\ ", "name ", True, 1),  # escaped trailing space is kept
    ("name\\ ", "name", False, None),
    ("a\nb\na\nc", "c", True, 4),
    ("x\r\ny\r\n", "y", True, 2),  # CRLF line endings
    # a '#' that is not #include is an ordinary character
    ("#notes", "#notes", True, 1),
    # a name not matched by anything
    ("*.tmp\n/build", "src/main.c", False, None),
]


@pytest.mark.parametrize(("lines", "name", "ignored", "line"), CASES)
def test_pattern_table(lines: str, name: str, ignored: bool, line: int | None) -> None:
    ign = Ignore.parse(lines)
    assert ign.is_ignored(name) is ignored
    found = ign.match(name)
    if line is None:
        assert found is None
    else:
        assert found is not None
        assert found.ignored is ignored
        assert found.pattern.line == line
        assert found.pattern.file == IGNORE_FILE_NAME


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_deletable_flag() -> None:
    ign = Ignore.parse("(?d).DS_Store\nThumbs.db\n!(?d)keep\n(?i)(?d)Desktop.ini")
    assert ign.is_deletable(".DS_Store")
    assert ign.is_deletable("a/b/.DS_Store")
    assert ign.is_ignored("Thumbs.db") and not ign.is_deletable("Thumbs.db")
    assert not ign.is_ignored("keep") and not ign.is_deletable("keep")  # negated: not ignored
    assert ign.is_deletable("x/DESKTOP.INI")
    assert not ign.is_deletable("unmatched")
    m = ign.match(".DS_Store")
    assert m == Match(ignored=True, deletable=True, pattern=ign.patterns[0])
    assert ign.patterns[0].deletable and not ign.patterns[0].case_insensitive


def test_pattern_records_source_and_flags() -> None:
    ign = Ignore.parse("// c\n(?d)!(?i)Foo/", source="sub/rules.txt")
    (p,) = ign.patterns
    assert (p.text, p.file, p.line, p.glob) == ("(?d)!(?i)Foo/", "sub/rules.txt", 2, "Foo/")
    assert p.negated and p.case_insensitive and p.deletable
    assert p.canonical == "!(?i)(?d)Foo/"
    assert p.matches("x/foo/y") and not p.matches("foo")


def test_empty_ignore_ignores_nothing() -> None:
    for ign in (Ignore(), Ignore.parse(""), Ignore.parse("// only a comment\n\n")):
        assert ign.patterns == ()
        assert not ign
        assert ign.match("anything") is None
        assert not ign.is_ignored("a/b/c")
        assert not ign.should_skip_dir("a")
        assert ign.fingerprint == Ignore().fingerprint


def test_root_itself_never_matches() -> None:
    ign = Ignore.parse("**")
    assert ign.match("") is None and ign.match(".") is None
    assert ign.is_ignored("x")


def test_fingerprint_tracks_effective_patterns_only() -> None:
    base = Ignore.parse("*.tmp\n!keep\n(?d)(?i)x")
    same = Ignore.parse("// header\n\n  *.tmp  \n!keep\n*.tmp\n(?i)(?d)x\n")
    reordered = Ignore.parse("!keep\n*.tmp\n(?d)(?i)x")
    changed = Ignore.parse("*.tmp\n!keep\n(?d)x")
    assert base.fingerprint == same.fingerprint
    assert base.fingerprint != reordered.fingerprint  # order decides first match
    assert base.fingerprint != changed.fingerprint
    assert len(base.fingerprint) == 64


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("ok\nfile[0-9.txt", 2, "unclosed '['"),
        ("/[", 1, "unclosed '['"),
        ("**/[", 1, "unclosed '['"),
        ("a\nb\n{x,y", 3, "unclosed '{'"),
        ("[]", 1, "empty character class"),
        ("[z-a]", 1, "reversed"),
        ("trailing\\", 1, "trailing backslash"),
        ("!", 1, "missing pattern"),
        ("(?d)(?i)", 1, "missing pattern"),
        ("!#include x", 1, "cannot take prefixes"),
        ("#includex", 1, "malformed #include"),
        ("#include", 1, "names no file"),
        ("#escape=|", 1, "unsupported escape"),
    ],
)
def test_bad_patterns_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(IgnoreError) as info:
        Ignore.parse(text, read_include=lambda name: "")
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.file == IGNORE_FILE_NAME and err.line == line
    assert fragment in str(err)
    assert str(err).startswith(f"{IGNORE_FILE_NAME}:{line}: ")


def test_escape_line_for_backslash_is_accepted() -> None:
    ign = Ignore.parse("#escape=\\\n\\*")
    assert ign.is_ignored("*") and not ign.is_ignored("x")


# ---------------------------------------------------------------- includes


def test_include_with_read_include_callable() -> None:
    files = {"rules/common.txt": "*.bak\n#include more.txt", "rules/more.txt": "!keep.bak"}
    ign = Ignore.parse("#include rules/common.txt\n*.o", read_include=files.__getitem__)
    # order is preserved through includes: the negation from more.txt comes after *.bak
    assert [(p.file, p.line, p.text) for p in ign.patterns] == [
        ("rules/common.txt", 1, "*.bak"),
        ("rules/more.txt", 1, "!keep.bak"),
        (IGNORE_FILE_NAME, 2, "*.o"),
    ]
    assert ign.is_ignored("keep.bak")  # *.bak comes first
    # included patterns stay relative to the folder root
    assert ign.match("x/a.bak").pattern.file == "rules/common.txt"  # type: ignore[union-attr]


def test_include_without_reader_is_an_error() -> None:
    with pytest.raises(IgnoreError, match="includes are not available"):
        Ignore.parse("#include other")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_load_missing_file_is_empty(tmp_path: Path) -> None:
    ign = Ignore.load(tmp_path)
    assert ign.patterns == () and not ign.is_ignored("x")


def test_load_with_relative_include(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "// root\n#include conf/shared.ignore\n/local-only\n")
    # nested include path is relative to the including file's directory
    write(tmp_path / "conf" / "shared.ignore", "*.swp\n#include ../conf/extra/x.ignore\n")
    write(tmp_path / "conf" / "extra" / "x.ignore", "(?d).DS_Store\n")
    ign = Ignore.load(tmp_path)
    assert [p.text for p in ign.patterns] == ["*.swp", "(?d).DS_Store", "/local-only"]
    assert ign.is_ignored("deep/a.swp")
    assert ign.is_deletable("x/.DS_Store")
    assert ign.match("x/.DS_Store").pattern.file == "conf/extra/x.ignore"  # type: ignore[union-attr]
    assert ign.is_ignored("local-only") and not ign.is_ignored("sub/local-only")


def test_load_include_relative_to_including_file(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "#include sub/a\n")
    write(tmp_path / "sub" / "a", "#include b\n")
    write(tmp_path / "sub" / "b", "from-b\n")
    write(tmp_path / "b", "from-root-b\n")
    ign = Ignore.load(tmp_path)
    assert [p.text for p in ign.patterns] == ["from-b"]


def test_load_include_missing_file(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "a\n#include nope.txt\n")
    with pytest.raises(IgnoreError) as info:
        Ignore.load(tmp_path)
    assert (info.value.file, info.value.line) == (IGNORE_FILE_NAME, 2)
    assert "'nope.txt': file not found" in str(info.value)


def test_load_include_loop(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "#include a\n")
    write(tmp_path / "a", "x\n#include b\n")
    write(tmp_path / "b", "#include a\n")
    with pytest.raises(IgnoreError) as info:
        Ignore.load(tmp_path)
    assert (info.value.file, info.value.line) == ("b", 1)
    assert "#include loop: a -> b -> a" in str(info.value)


def test_self_include_is_a_loop(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "x\n#include ./.p2pignore\n")
    with pytest.raises(IgnoreError, match="#include loop"):
        Ignore.load(tmp_path)


def test_include_twice_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "#include a\n#include ./a\n")
    write(tmp_path / "a", "x\n")
    with pytest.raises(IgnoreError, match=r"already included at \.p2pignore:1"):
        Ignore.load(tmp_path)


@pytest.mark.parametrize("target", ["../outside", "sub/../../outside", "/etc/passwd", "."])
def test_load_include_cannot_escape_folder(tmp_path: Path, target: str) -> None:
    root = tmp_path / "folder"
    write(root / IGNORE_FILE_NAME, f"#include {target}\n")
    write(tmp_path / "outside", "*\n")
    with pytest.raises(IgnoreError) as info:
        Ignore.load(root)
    assert info.value.line == 1
    assert "escapes the folder" in str(info.value) or "relative to the folder" in str(info.value)


def test_load_include_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    write(tmp_path / "outside.ignore", "*\n")
    root.mkdir()
    os.symlink(tmp_path / "outside.ignore", root / "link.ignore")
    write(root / IGNORE_FILE_NAME, "#include link.ignore\n")
    with pytest.raises(IgnoreError, match="outside the folder"):
        Ignore.load(root)


def test_load_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE_NAME, "ok\n#include inc\n")
    write(tmp_path / "inc", "fine\n\nbad[\n")
    with pytest.raises(IgnoreError) as info:
        Ignore.load(tmp_path)
    assert (info.value.file, info.value.line) == ("inc", 3)
    assert str(info.value).startswith("inc:3: unclosed '['")


def test_load_reports_non_utf8(tmp_path: Path) -> None:
    (tmp_path / IGNORE_FILE_NAME).write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(IgnoreError, match="cannot read"):
        Ignore.load(tmp_path)


def test_load_accepts_bom(tmp_path: Path) -> None:
    (tmp_path / IGNORE_FILE_NAME).write_bytes("\ufefffoo\n".encode())
    assert Ignore.load(tmp_path).is_ignored("foo")


# ---------------------------------------------------------------- should_skip_dir


def test_skip_dir_without_negations() -> None:
    ign = Ignore.parse("node_modules\n/build\n*.tmp")
    assert ign.should_skip_dir("node_modules")
    assert ign.should_skip_dir("pkg/node_modules")
    assert ign.should_skip_dir("build")
    assert not ign.should_skip_dir("src")  # not ignored at all
    assert not ign.should_skip_dir("sub/build")


def test_skip_dir_unanchored_negation_blocks_skipping() -> None:
    ign = Ignore.parse("!frobble\n*2")
    assert ign.is_ignored("bar2")
    assert not ign.should_skip_dir("bar2")  # bar2/frobble must still be found
    assert not ign.is_ignored("bar2/frobble")


def test_skip_dir_anchored_negation_only_blocks_its_path() -> None:
    ign = Ignore.parse("!/photos/keep/*.jpg\nphotos\nvideos\n!/top")
    assert not ign.should_skip_dir("photos")
    assert not ign.should_skip_dir("photos/keep")
    assert ign.should_skip_dir("photos/other")
    assert ign.should_skip_dir("videos")
    assert ign.should_skip_dir("a/photos")
    assert not ign.is_ignored("photos/keep/x.jpg")


def test_skip_dir_negation_before_ignoring_pattern_counts() -> None:
    # a negation listed BEFORE the pattern that ignores the directory still wins for
    # the children it matches
    ign = Ignore.parse("!/cache/important\n/cache")
    assert ign.is_ignored("cache")
    assert not ign.is_ignored("cache/important")
    assert not ign.should_skip_dir("cache")


def test_skip_dir_conservative_cases() -> None:
    # '**' in a rooted negation, a '/' hidden inside braces, case-insensitive negation
    assert not Ignore.parse("!/**/keep\n*").should_skip_dir("anything")
    assert not Ignore.parse("!/{a,b/c}\n*").should_skip_dir("b")
    assert not Ignore.parse("(?i)!/DATA/keep\ndata").should_skip_dir("data")
    assert Ignore.parse("!/data/keep\n(?i)data").should_skip_dir("DATA")


@pytest.mark.parametrize(
    ("lines", "directory", "skip"),
    [
        ("x", "x", True),
        ("!/x/y\nx", "x", False),
        ("!/x/y\n/x", "x", False),
        ("!keep\n*", "d", False),
        ("!/a/*/c\n/a", "a/b", False),
        ("!/a/*/c\n/a", "a/b/c", False),  # not ignored itself
        ("!/a/*/c\n/a", "a/b/d", True),
        ("!/{a,b}/k\n*", "b", False),
        ("!/{a,b}/k\n*", "c", True),
        ("logs/\n!/logs/keep", "logs/old", True),
        ("logs/\n!/logs/keep", "logs", False),  # 'logs/' does not match the dir itself
    ],
)
def test_skip_dir_table_and_soundness(lines: str, directory: str, skip: bool) -> None:
    """Whenever should_skip_dir says yes, every name below the directory is ignored."""
    ign = Ignore.parse(lines)
    assert ign.should_skip_dir(directory) is skip
    if skip:
        below = ["y", "k", "c", "d", "keep", "z/keep", "b/c", "y/deeper", "keep/more"]
        assert all(ign.is_ignored(f"{directory}/{child}") for child in below)


# ---------------------------------------------------------------- performance


def test_matching_100k_names_is_cheap() -> None:
    ign = Ignore.parse(
        "\n".join(
            [
                "(?d).DS_Store",
                "Thumbs.db",
                "*.tmp",
                "*.swp",
                "~*",
                "/build",
                "node_modules",
                "!important.log",
                "*.log",
                "(?i)*.BAK",
                "/dist/**",
                "cache/",
                "**/.git",
                "*.{o,a,so}",
                "[Dd]esktop.ini",
                "/tmp?",
                "__pycache__",
                "*.pyc",
                "/vendor/*/test",
                "!/src/keep",
            ]
        )
    )
    names = [
        f"dir{i % 97}/sub{i % 13}/file{i}.{('c', 'log', 'tmp', 'txt')[i % 4]}"
        for i in range(100_000)
    ]
    start = time.perf_counter()
    ignored = sum(ign.is_ignored(n) for n in names)
    elapsed = time.perf_counter() - start
    assert ignored == 50_000  # .log and .tmp
    assert elapsed < 3.0, f"100k matches took {elapsed:.2f}s"
    # a second pass hits the cache for the most recent names
    start = time.perf_counter()
    for n in names[-10_000:]:
        ign.is_ignored(n)
    assert time.perf_counter() - start < 0.5


# ---------------------------------------------------------------- properties

_PIECES = ["a", "b", "A", ".", "*", "**", "?", "/", "[ab]", "[!a]", "{a,b/a}", "{,x}"]
_PREFIXES = ["", "!", "(?i)", "(?d)", "!(?i)"]


@st.composite
def _pattern_lines(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        body = "".join(draw(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=5)))
        lines.append(draw(st.sampled_from(_PREFIXES)) + draw(st.sampled_from(["", "/"])) + body)
    return "\n".join(lines)


_SEGMENTS = st.text("abAx.", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
_NAMES = st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(_pattern_lines(), st.lists(_NAMES, min_size=1, max_size=10))
def test_match_is_first_matching_pattern(lines: str, names: list[str]) -> None:
    """The combined matcher agrees with trying each pattern in order; skipping is sound."""
    try:
        ign = Ignore.parse(lines)
    except IgnoreError:
        return
    for name in names:
        first = next((p for p in ign.patterns if p.matches(name)), None)
        found = ign.match(name)
        assert (found.pattern if found else None) == first
        if found is not None:
            assert found.ignored is not first.negated  # type: ignore[union-attr]
        if ign.should_skip_dir(name):
            for child in names:
                assert ign.is_ignored(f"{name}/{child}")
