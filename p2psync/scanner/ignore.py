"""`.p2pignore` patterns in Syncthing's `.stignore` syntax.

Pure and synchronous: parsing and matching touch no filesystem except in
``Ignore.load`` (call it from a worker thread). Semantics follow Syncthing's
``lib/ignore`` and its users/ignoring.rst:

* one pattern per line; leading and trailing whitespace is stripped (a trailing
  whitespace character escaped with ``\\`` is kept); blank lines and lines starting
  with ``//`` are comments; a line repeated verbatim is skipped;
* the FIRST matching pattern decides; no match means "not ignored";
* ``*`` and ``?`` never match ``/``; ``**`` matches anything including ``/``;
  ``[a-z]`` / ``[!a-z]`` (``[^a-z]`` too) never match ``/`` (not even ``[/]``); ``{a,b}``
  alternation (nestable, may hold globs); ``\\`` escapes the next character;
* a leading ``/`` anchors to the folder root; any other pattern matches at any depth
  (Syncthing compiles ``p`` and ``**/p``; a leading ``**/`` is also tried without it);
  note ``a/**/b`` needs at least one directory between ``a`` and ``b``, as in Syncthing;
* a pattern also matches everything below what it matches (``p/**`` is implied); a
  pattern ending in ``/`` matches only the contents, not the directory itself;
* prefixes, each at most once and in any order: ``!`` (negate: not ignored),
  ``(?i)`` (case-insensitive), ``(?d)`` (deletable when blocking a directory removal);
* ``#include path``: patterns from another file, path relative to the directory of
  the including file; it must stay inside the folder; missing files, loops and a file
  included twice are errors.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

IGNORE_FILE_NAME = ".p2pignore"
_CACHE_SIZE = 1 << 16

ReadInclude = Callable[[str], str]


class IgnoreError(ConfigError):
    """An ignore file (.p2pignore or a file it includes) holds a bad pattern or include."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class _GlobSyntaxError(ValueError):
    """Raised by the glob parser; turned into IgnoreError with file and line."""


# --------------------------------------------------------------------------- glob AST
# A glob parses into a list of nodes; each node is one of the tuples below. Keeping an
# AST (rather than emitting a regex directly) lets should_skip_dir reason per segment.

_SEP = ("sep",)  # a literal '/'
_STAR = ("star",)  # '*': any run of non-'/' characters
_DSTAR = ("dstar",)  # '**': anything, '/' included
_ANY = ("any",)  # '?': one non-'/' character
Node = tuple  # ("lit", ch) | ("class", regex) | ("alt", [nodes, ...]) | the singletons


def _parse_glob(text: str) -> list[Node]:
    nodes, pos = _parse_seq(text, 0, in_alt=False)
    assert pos == len(text)
    return nodes


def _parse_seq(text: str, pos: int, *, in_alt: bool) -> tuple[list[Node], int]:
    nodes: list[Node] = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if in_alt and ch in ",}":
            return nodes, pos
        if ch == "\\":
            if pos + 1 >= n:
                raise _GlobSyntaxError("trailing backslash escapes nothing")
            escaped = text[pos + 1]
            nodes.append(_SEP if escaped == "/" else ("lit", escaped))
            pos += 2
        elif ch == "*":
            end = pos
            while end < n and text[end] == "*":
                end += 1
            nodes.append(_DSTAR if end - pos >= 2 else _STAR)
            pos = end
        elif ch == "?":
            nodes.append(_ANY)
            pos += 1
        elif ch == "/":
            nodes.append(_SEP)
            pos += 1
        elif ch == "[":
            regex, pos = _parse_class(text, pos)
            nodes.append(("class", regex))
        elif ch == "{":
            alternatives: list[list[Node]] = []
            pos += 1
            while True:
                alt, pos = _parse_seq(text, pos, in_alt=True)
                alternatives.append(alt)
                if pos >= n:
                    raise _GlobSyntaxError("unclosed '{' (alternation)")
                pos += 1
                if text[pos - 1] == "}":
                    break
            nodes.append(("alt", alternatives))
        else:  # includes a stray '}' or ',' outside braces: literal
            nodes.append(("lit", ch))
            pos += 1
    if in_alt:
        raise _GlobSyntaxError("unclosed '{' (alternation)")
    return nodes, pos


def _parse_class(text: str, start: int) -> tuple[str, int]:
    """Parse ``[...]`` at ``start``; return a regex for one non-'/' character."""
    pos = start + 1
    n = len(text)
    negate = pos < n and text[pos] in "!^"
    if negate:
        pos += 1
    items: list[str] = []
    while True:
        if pos >= n:
            raise _GlobSyntaxError("unclosed '[' (character class)")
        ch = text[pos]
        if ch == "]":
            pos += 1
            break
        if ch == "\\":
            if pos + 1 >= n:
                raise _GlobSyntaxError("unclosed '[' (character class)")
            ch = text[pos + 1]
            pos += 2
        else:
            pos += 1
        if pos + 1 < n and text[pos] == "-" and text[pos + 1] != "]":
            hi = text[pos + 1]
            pos += 2
            if hi == "\\":
                if pos >= n:
                    raise _GlobSyntaxError("unclosed '[' (character class)")
                hi = text[pos]
                pos += 1
            if hi < ch:
                raise _GlobSyntaxError(f"character range '{ch}-{hi}' is reversed")
            items.append(f"{re.escape(ch)}-{re.escape(hi)}")
        else:
            items.append(re.escape(ch))
    if not items:
        raise _GlobSyntaxError("empty character class '[]'")
    body = "".join(items)
    if negate:
        return f"[^/{body}]", pos
    return f"(?!/)[{body}]", pos


def _to_regex(nodes: list[Node]) -> str:
    out: list[str] = []
    for node in nodes:
        kind = node[0]
        if kind == "lit":
            out.append(re.escape(node[1]))
        elif kind == "sep":
            out.append("/")
        elif kind == "star":
            out.append("[^/]*")
        elif kind == "dstar":
            out.append(".*")
        elif kind == "any":
            out.append("[^/]")
        elif kind == "class":
            out.append(node[1])
        else:  # alt
            out.append("(?:" + "|".join(_to_regex(alt) for alt in node[1]) + ")")
    return "".join(out)


def _split_segments(nodes: list[Node]) -> list[list[Node]] | None:
    """Split on top-level '/'; None when a '/' hides inside an alternation (unknown shape)."""
    if any(node[0] == "alt" and _alt_has_sep(node) for node in nodes):
        return None
    segments: list[list[Node]] = [[]]
    for node in nodes:
        if node == _SEP:
            segments.append([])
        else:
            segments[-1].append(node)
    return segments


def _alt_has_sep(node: Node) -> bool:
    for alt in node[1]:
        for inner in alt:
            if inner[0] in ("sep", "dstar") or (inner[0] == "alt" and _alt_has_sep(inner)):
                return True
    return False


def _has_dstar(nodes: list[Node]) -> bool:
    return any(
        node[0] == "dstar" or (node[0] == "alt" and any(_has_dstar(a) for a in node[1]))
        for node in nodes
    )


# --------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class Pattern:
    """One effective pattern line, compiled.

    ``text`` is the line as written (stripped); ``glob`` is it without prefixes;
    ``regex`` full-matches exactly the names this line matches (anchoring, the implied
    ``/**`` and case folding already applied).
    """

    text: str
    file: str
    line: int
    glob: str
    negated: bool = False
    case_insensitive: bool = False
    deletable: bool = False
    anchored: bool = False
    regex: re.Pattern[str] = field(default=re.compile(""), repr=False, compare=False)
    # Rooted segment matchers used by should_skip_dir; None = "could match anywhere".
    _segments: tuple[tuple[tuple[re.Pattern[str], bool], ...], ...] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def canonical(self) -> str:
        """The line with its prefixes in a fixed order: what the fingerprint hashes."""
        return (
            ("!" if self.negated else "")
            + ("(?i)" if self.case_insensitive else "")
            + ("(?d)" if self.deletable else "")
            + self.glob
        )

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None

    def could_match_below(self, dir_name: str) -> bool:
        """Conservatively: may this pattern match some name strictly inside ``dir_name``?"""
        if self._segments is None:
            return True
        parts = dir_name.split("/")
        for variant in self._segments:
            if _variant_could_match_below(variant, parts):
                return True
        return False


def _variant_could_match_below(
    variant: tuple[tuple[re.Pattern[str], bool], ...], parts: list[str]
) -> bool:
    for i, part in enumerate(parts):
        if i >= len(variant):
            return False
        regex, has_dstar = variant[i]
        if has_dstar:
            return True
        if regex.fullmatch(part) is None:
            return False
    return len(variant) > len(parts)


@dataclass(frozen=True)
class Match:
    """The verdict of the first pattern matching a name."""

    ignored: bool
    deletable: bool
    pattern: Pattern


_PREFIXES = {"!": "negated", "(?i)": "case_insensitive", "(?d)": "deletable"}


def compile_pattern(text: str, *, file: str = IGNORE_FILE_NAME, line: int = 1) -> Pattern:
    """Compile one (already stripped, non-comment, non-include) pattern line."""
    flags = {"negated": False, "case_insensitive": False, "deletable": False}
    rest = text
    progressed = True
    while progressed:
        progressed = False
        for prefix, flag in _PREFIXES.items():
            if rest.startswith(prefix) and not flags[flag]:
                flags[flag] = True
                rest = rest[len(prefix) :]
                progressed = True
    if not rest:
        raise IgnoreError(file, line, f"missing pattern after prefixes in {text!r}")
    if rest.startswith("#include"):
        raise IgnoreError(file, line, f"#include cannot take prefixes: {text!r}")
    glob = unicodedata.normalize("NFC", rest)

    body = glob
    implied_contents = True
    if body.endswith("/**"):
        implied_contents = False
    elif body.endswith("/"):
        body += "**"
        implied_contents = False
    anchored = body.startswith("/")
    if anchored:
        body = body[1:]
    elif body.startswith("**/"):
        body = body[3:]

    try:
        nodes = _parse_glob(body)
    except _GlobSyntaxError as exc:
        raise IgnoreError(file, line, f"{exc} in pattern {text!r}") from None
    regex_text = ("" if anchored else "(?:.*/)?") + _to_regex(nodes)
    if implied_contents:
        regex_text += "(?:/.*)?"
    re_flags = re.DOTALL | (re.IGNORECASE if flags["case_insensitive"] else 0)
    try:
        regex = re.compile(regex_text, re_flags)
    except re.error as exc:  # should not happen: the translation is ours
        raise IgnoreError(file, line, f"cannot compile pattern {text!r}: {exc}") from None

    segments = None
    if anchored:
        segments = _compile_segments(nodes, implied_contents, re_flags)
    return Pattern(
        text=text,
        file=file,
        line=line,
        glob=glob,
        anchored=anchored,
        regex=regex,
        _segments=segments,
        **flags,
    )


def _compile_segments(
    nodes: list[Node], implied_contents: bool, re_flags: int
) -> tuple[tuple[tuple[re.Pattern[str], bool], ...], ...] | None:
    variants = [nodes]
    if implied_contents:
        variants.append([*nodes, _SEP, _DSTAR])
    compiled = []
    for variant in variants:
        segments = _split_segments(variant)
        if segments is None:
            return None
        compiled.append(
            tuple((re.compile(_to_regex(seg), re_flags), _has_dstar(seg)) for seg in segments)
        )
    return tuple(compiled)


# --------------------------------------------------------------------------- files


def _strip_line(raw: str) -> str:
    """Strip like Syncthing, but keep one trailing whitespace character escaped by '\\'."""
    line = raw.strip()
    if len(line) < len(raw.lstrip()):
        trailing_backslashes = len(line) - len(line.rstrip("\\"))
        if trailing_backslashes % 2 == 1:
            line += raw.lstrip()[len(line)]
    return line


def _resolve_include(including_file: str, target: str, file: str, line: int) -> str:
    if not target:
        raise IgnoreError(file, line, "#include names no file")
    if target.startswith("/"):
        raise IgnoreError(file, line, f"#include {target!r}: path must be relative to the folder")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(including_file), target))
    if resolved == ".." or resolved.startswith("../") or resolved in (".", ""):
        raise IgnoreError(file, line, f"#include {target!r} escapes the folder")
    return resolved


class _Parser:
    def __init__(self, read_include: ReadInclude | None) -> None:
        self.read_include = read_include
        self.patterns: list[Pattern] = []
        self.seen_lines: set[str] = set()
        self.included: dict[str, str] = {}  # resolved name -> "file:line" that included it
        self.stack: list[str] = []

    def parse(self, text: str, source: str) -> None:
        self.stack.append(source)
        text = text.removeprefix("\ufeff")
        for number, raw in enumerate(text.split("\n"), start=1):
            line = _strip_line(raw.removesuffix("\r"))
            if not line or line.startswith("//"):
                continue
            if line == "#include" or line.startswith(("#include ", "#include\t")):
                self._include(line[len("#include") :].strip(), source, number)
                continue
            if line.startswith("#include"):
                raise IgnoreError(source, number, f"malformed #include line {line!r}")
            if line.startswith("#escape"):
                # Syncthing 2.0 lets a file pick its escape character; '\\' is the
                # only one we support (it is the default on Unix-likes anyway).
                if line.replace(" ", "") != "#escape=\\":
                    raise IgnoreError(source, number, f"unsupported escape line {line!r}")
                continue
            if line in self.seen_lines:
                continue
            self.seen_lines.add(line)
            self.patterns.append(compile_pattern(line, file=source, line=number))
        self.stack.pop()

    def _include(self, target: str, source: str, number: int) -> None:
        name = _resolve_include(source, target, source, number)
        if name in self.stack:
            chain = " -> ".join([*self.stack[self.stack.index(name) :], name])
            raise IgnoreError(source, number, f"#include loop: {chain}")
        if name in self.included:
            raise IgnoreError(
                source,
                number,
                f"#include {name!r}: already included at {self.included[name]}",
            )
        if self.read_include is None:
            raise IgnoreError(source, number, f"#include {name!r}: includes are not available")
        try:
            text = self.read_include(name)
        except FileNotFoundError:
            raise IgnoreError(source, number, f"#include {name!r}: file not found") from None
        except IgnoreError as exc:
            raise IgnoreError(source, number, f"#include {name!r}: {exc.reason}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IgnoreError(source, number, f"#include {name!r}: cannot read: {exc}") from None
        self.included[name] = f"{source}:{number}"
        self.parse(text, name)


# --------------------------------------------------------------------------- Ignore


class Ignore:
    """An ordered set of ignore patterns; the first matching pattern decides.

    Immutable once built and safe to share between threads. Build a new one (and
    compare ``fingerprint``) when the file changes.
    """

    def __init__(self, patterns: Iterable[Pattern] = ()) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(patterns)
        digest = hashlib.sha256()
        for pattern in self.patterns:
            digest.update(pattern.canonical.encode("utf-8", "surrogatepass") + b"\n")
        self.fingerprint: str = digest.hexdigest()
        # One alternation, one group per pattern: the regex engine tries the
        # alternatives in order, so the group that matched is the first pattern.
        self._combined: re.Pattern[str] | None = None
        if self.patterns:
            parts = []
            for pattern in self.patterns:
                scoped = "(?i:" if pattern.case_insensitive else "(?:"
                parts.append("(" + scoped + pattern.regex.pattern + "))")
            self._combined = re.compile("|".join(parts), re.DOTALL)
        self._negations = tuple(p for p in self.patterns if p.negated)
        self._match_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(self._match_uncached)
        self._skip_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(self._skip_uncached)

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        source: str = IGNORE_FILE_NAME,
        read_include: ReadInclude | None = None,
    ) -> Ignore:
        """Parse ignore-file text; ``read_include(name)`` returns the text of a
        folder-relative file (raising FileNotFoundError if absent)."""
        parser = _Parser(read_include)
        parser.parse(text, source)
        return cls(parser.patterns)

    @classmethod
    def load(cls, folder_root: Path) -> Ignore:
        """Read ``<folder_root>/.p2pignore`` (empty Ignore if absent). Blocking I/O."""
        root = Path(folder_root)
        try:
            real_root = root.resolve(strict=True)
        except OSError as exc:
            raise IgnoreError(IGNORE_FILE_NAME, None, f"folder {root} unreadable: {exc}") from None

        def read(name: str) -> str:
            path = root / name
            real = path.resolve()
            if not real.is_relative_to(real_root):
                raise IgnoreError(name, None, "resolves outside the folder (symlink)")
            return real.read_text(encoding="utf-8")

        try:
            text = read(IGNORE_FILE_NAME)
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise IgnoreError(IGNORE_FILE_NAME, None, f"cannot read: {exc}") from None
        return cls.parse(text, source=IGNORE_FILE_NAME, read_include=read)

    def __repr__(self) -> str:
        return f"Ignore({len(self.patterns)} patterns, fingerprint={self.fingerprint[:12]})"

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, name: str) -> Match | None:
        """The verdict of the first pattern matching ``name``, or None."""
        if self._combined is None or name in ("", "."):
            return None
        return self._match_cached(name)

    def _match_uncached(self, name: str) -> Match | None:
        assert self._combined is not None
        found = self._combined.fullmatch(unicodedata.normalize("NFC", name))
        if found is None:
            return None
        pattern = self.patterns[found.lastindex - 1]  # type: ignore[operator]
        ignored = not pattern.negated
        return Match(ignored=ignored, deletable=ignored and pattern.deletable, pattern=pattern)

    def is_ignored(self, name: str) -> bool:
        found = self.match(name)
        return found is not None and found.ignored

    def is_deletable(self, name: str) -> bool:
        found = self.match(name)
        return found is not None and found.deletable

    def should_skip_dir(self, name: str) -> bool:
        """True when directory ``name`` is ignored and nothing inside it can be un-ignored,
        so a scanner need not walk it. Conservative: any negation that might match
        inside (every unanchored ``!`` pattern, say) makes this False."""
        if not self.is_ignored(name):
            return False
        return self._skip_cached(unicodedata.normalize("NFC", name))

    def _skip_uncached(self, name: str) -> bool:
        return not any(p.could_match_below(name) for p in self._negations)


class LoadedIgnore:
    """A folder's ignore patterns as last loaded, shared by whoever must follow them (the
    folder runner replaces them; the puller and the block server read them)."""

    def __init__(self, current: Ignore | None = None) -> None:
        self.current = current if current is not None else Ignore()

    def __call__(self) -> Ignore:
        return self.current
