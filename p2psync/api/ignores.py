"""A folder's ``.p2pignore`` for editors: read it, preview a draft, save it.

The preview parses the draft exactly as the scanner will (``Ignore.parse``, includes read
from the folder) and tries it on the names in the folder on disk (bounded), since names
that are ignored now are not in the index. Blocking I/O: call from a worker thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fs.internal import IGNORE_FILE, is_internal_entry, temp_name
from ..scanner.ignore import Ignore, IgnoreError

MAX_PREVIEW_NAMES = 5000  # names on disk tried against a draft
MAX_IGNORE_FILE = 256 * 1024


def read_ignore_text(root: Path) -> str:
    try:
        return (root / IGNORE_FILE).read_text("utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {IGNORE_FILE}: {exc}") from None


def parse_draft(root: Path, text: str) -> Ignore:
    """``text`` as ignore patterns of the folder at ``root``; UsageError naming the line."""
    if len(text) > MAX_IGNORE_FILE:
        raise UsageError(f"{IGNORE_FILE} is limited to {MAX_IGNORE_FILE} characters here")
    real_root = root.resolve()

    def read(name: str) -> str:
        real = (root / name).resolve()
        if not real.is_relative_to(real_root):
            raise IgnoreError(name, None, "resolves outside the folder (symlink)")
        return real.read_text(encoding="utf-8")

    try:
        return Ignore.parse(text, source=IGNORE_FILE, read_include=read)
    except IgnoreError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read an included file: {exc}") from None


def preview(root: Path, text: str) -> dict[str, Any]:
    """Which names on disk the draft ignores (first ``MAX_PREVIEW_NAMES`` looked at)."""
    ignore = parse_draft(root, text)
    ignored: list[dict[str, Any]] = []
    looked = 0
    for dirpath, dirnames, filenames in os.walk(root):
        parent = os.path.relpath(dirpath, root)
        parent = "" if parent == "." else parent.replace(os.sep, "/")
        dirnames[:] = sorted(d for d in dirnames if not is_internal_entry(parent, d))
        for base in sorted(dirnames) + sorted(filenames):
            if is_internal_entry(parent, base):
                continue
            name = f"{parent}/{base}" if parent else base
            looked += 1
            match = ignore.match(name)
            if match is not None and match.ignored:
                ignored.append(
                    {"name": name, "pattern": match.pattern.text, "line": match.pattern.line}
                )
            if looked >= MAX_PREVIEW_NAMES:
                return {"ignored": ignored, "looked": looked, "complete": False}
        # an ignored directory that nothing can un-ignore is not walked, as the scanner does
        dirnames[:] = [
            d for d in dirnames if not ignore.should_skip_dir(f"{parent}/{d}" if parent else d)
        ]
    return {"ignored": ignored, "looked": looked, "complete": True}


def save_ignore_text(root: Path, text: str) -> None:
    """Check the draft parses, then replace ``.p2pignore`` atomically."""
    parse_draft(root, text)
    path = root / IGNORE_FILE
    tmp = root / temp_name(IGNORE_FILE)  # one of our own names: never scanned
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text if not text or text.endswith("\n") else text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot save {IGNORE_FILE}: {exc.strerror or exc}") from None
