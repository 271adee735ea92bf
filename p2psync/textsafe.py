"""Printing untrusted names safely: control characters and ANSI escapes are neutralised."""

from __future__ import annotations

import unicodedata


def safe(text: str) -> str:
    """``text`` with every control/format character shown as an escape, so a hostile file
    or device name cannot move the cursor, recolour or hide output in a terminal."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)
