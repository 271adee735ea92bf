"""docs/ignore.md's example file answers the way its table says (the page stays true)."""

from __future__ import annotations

import re
from pathlib import Path

from p2psync.scanner.ignore import Ignore

DOC = Path(__file__).resolve().parents[2] / "docs" / "ignore.md"


def test_the_documented_examples_hold() -> None:
    text = DOC.read_text("utf-8")
    example = text.split("## Examples", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (yes|no) \|$", text, flags=re.M)
    assert len(rows) >= 8
    ignore = Ignore.parse(example)
    for path, verdict in rows:
        assert ignore.is_ignored(path) == (verdict == "yes"), (path, verdict)
