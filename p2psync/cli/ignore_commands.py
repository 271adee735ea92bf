"""`p2psync ignore ...`: which .p2pignore pattern matches a path."""

from __future__ import annotations

from typing import Any

import click

from ..textsafe import safe
from .support import Context, emit, json_option


@click.group()
def ignore() -> None:
    """Ignore patterns (.p2pignore)."""


@ignore.command("check")
@click.argument("folder_id")
@click.argument("path")
@json_option
@click.pass_obj
def ignore_check(obj: Context, folder_id: str, path: str, as_json: bool) -> None:
    """Is PATH (folder-relative) ignored in FOLDER, and by which pattern?"""
    verdict = obj.offline.ignore_verdict(obj.config(), folder_id, path)
    name, match = verdict.name, verdict.match
    data: dict[str, Any] = {
        "folder": folder_id,
        "path": name,
        "ignored": bool(match and match.ignored),
    }
    if match is not None:
        data.update(
            pattern=match.pattern.text,
            file=match.pattern.file,
            line=match.pattern.line,
            deletable=match.deletable,
        )

    def human() -> None:
        if match is None:
            click.echo(f"{safe(name)}: not ignored (no pattern matches)")
        else:
            verdict = "ignored" if match.ignored else "not ignored"
            where = f"{safe(match.pattern.file)}:{match.pattern.line}"
            click.echo(f"{safe(name)}: {verdict} by {where}: {safe(match.pattern.text)}")

    emit(data, as_json, human)
