"""Where in config.toml a validation error is (pure, best effort).

``tomllib`` gives line numbers for syntax errors only; a validation error names a key path
such as ``folders[1].versioning.type``. ``line_of`` finds that key's line by following
the table headers (``[discovery]``, ``[[folders]]``, ``[folders.versioning]``), so the
user is told where to look; for a missing key, the line of its table's header. None when
the key is not written on a line of its own (an inline table) or the path cannot be
followed.
"""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)(?:\[(\d+)\])?")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\s-]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")


def _path(where: str) -> list[tuple[str, int | None]] | None:
    out: list[tuple[str, int | None]] = []
    for part in where.split("."):
        m = _SEGMENT.fullmatch(part)
        if m is None:
            return None
        out.append((m.group(1), int(m.group(2)) if m.group(2) is not None else None))
    return out


def line_of(text: str, where: str) -> int | None:
    """The 1-based line of the key ``where`` names in ``text``, or None."""
    path = _path(where)
    if not path:
        return None
    key = path[-1][0]  # "addresses[2]" is on the line of "addresses"
    tables = path[:-1]
    counts: dict[str, int] = {}  # array-of-tables name -> index of the current element
    current: list[tuple[str, int | None]] = []
    table_line: int | None = None  # a missing key: point at its table's header
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = [n.strip() for n in header.group(2).split(".")]
            if header.group(1) == "[[":
                dotted = ".".join(names)
                counts[dotted] = counts.get(dotted, -1) + 1
                for inner in [k for k in counts if k.startswith(dotted + ".")]:
                    del counts[inner]
                current = [(n, None) for n in names[:-1]] + [(names[-1], counts[dotted])]
            else:
                current = [(n, None) for n in names]
                if current and current[0][0] in counts and len(current) > 1:
                    current[0] = (current[0][0], counts[current[0][0]])
            if current == tables and table_line is None:
                table_line = number
            continue
        m = _KEY.match(line)
        if m and m.group(1).strip('"') == key and current == tables:
            return number
    return table_line if tables else None
