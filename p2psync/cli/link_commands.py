"""`p2psync link ...`: share links, read-only HTTPS URLs for people who run nothing.

The daemon serves them (``p2psync/links``); ``create`` and ``revoke`` go through its API.
``list`` reads the link store when the daemon is not running, and ``revoke`` then
writes it directly: a revoked link serves nothing from the next request on.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from ..errors import UsageError
from ..textsafe import safe
from .support import Context, emit, json_option, url_segment

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration like 7d, 12h, 1d12h, 90m, 30s, 2w; UsageError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"duration {text!r} is not like 7d, 12h, 30m, 1d12h")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError("the duration must be more than 0")
    return float(seconds)


@click.group()
def link() -> None:
    """Share a file or folder by HTTPS link (read-only; optional password and expiry)."""


@link.command("create")
@click.argument("target", metavar="FOLDER[/PATH]")
@click.option("--expires", help="Lifetime, e.g. 7d, 12h, 30m (default: none).")
@click.option("--password", "ask_password", is_flag=True, help="Ask for a password to set.")
@click.option("--max-downloads", type=click.IntRange(min=1), help="Downloads allowed in all.")
@click.option(
    "--listen", help="Where the link listener binds, HOST:PORT (default 127.0.0.1, any port)."
)
@click.option("--public-url", help="Base URL people reach the listener by (behind a proxy).")
@json_option
@click.pass_obj
def link_create(
    obj: Context,
    target: str,
    expires: str | None,
    ask_password: bool,
    max_downloads: int | None,
    listen: str | None,
    public_url: str | None,
    as_json: bool,
) -> None:
    """Make a link to FOLDER (a folder ID) or a file or directory inside it."""
    folder, _, path = target.partition("/")
    body: dict[str, Any] = {"folder": folder, "path": path}
    if expires is not None:
        body["expires_in"] = parse_duration(expires)
    if max_downloads is not None:
        body["max_downloads"] = max_downloads
    if listen is not None:
        body["listen"] = listen
    if public_url is not None:
        body["public_url"] = public_url
    if ask_password:
        body["password"] = click.prompt(
            "Password for the link", hide_input=True, confirmation_prompt=True
        )
    client = obj.need_daemon()
    data = client.post("/api/links", body)

    def human() -> None:
        created, listener = data["link"], data["listener"]
        click.echo(f"Link {created['id']} to {safe(_target(created))}:")
        click.echo(f"  {created['url']}")
        click.echo(_limits(created))
        click.echo(f"Certificate SHA-256 fingerprint: {listener['fingerprint']}")
        click.echo(f"  (self-signed unless replaced: {listener['certificate']})")
        if listener.get("warning"):
            click.echo(f"warning: {listener['warning']}", err=True)

    emit(data, as_json, human)


@link.command("list")
@click.option("--downloads", "show_downloads", is_flag=True, help="Show each link's downloads.")
@json_option
@click.pass_obj
def link_list(obj: Context, show_downloads: bool, as_json: bool) -> None:
    """The links, their state and downloads (offline: read from the link store)."""
    client = obj.daemon()
    if client is not None:
        data = client.get("/api/links")
    else:
        data = _offline_links(obj)

    def human() -> None:
        listener = data["listener"]
        if listener.get("running"):
            click.echo(f"Listening on https://{listener['address']}/")
            click.echo(f"Certificate SHA-256 fingerprint: {listener['fingerprint']}")
        elif listener.get("error"):
            click.echo(f"Link listener not running: {safe(listener['error'])}")
        if not data["links"]:
            click.echo("No links. Make one with: p2psync link create FOLDER[/PATH]")
        for item in data["links"]:
            click.echo(
                f"{item['id']}  {item['state']:<8} {safe(_target(item))}  "
                f"{item['url'] or '(listener not running)'}"
            )
            click.echo(_limits(item))
            if show_downloads:
                for d in item["recent_downloads"]:
                    click.echo(
                        f"    {_when(d['at'])}  {safe(d['address'])}  {safe(d['what'])}  "
                        f"{d['bytes']} B  {safe(d['outcome'])}"
                    )

    emit(data, as_json, human)


@link.command("revoke")
@click.argument("ref", metavar="ID|TOKEN|URL")
@json_option
@click.pass_obj
def link_revoke(obj: Context, ref: str, as_json: bool) -> None:
    """Revoke a link: it answers 410 Gone from now on."""
    client = obj.daemon()
    if client is not None:
        data = client.post(f"/api/links/{url_segment(_ref_id(ref))}/revoke")
    else:
        data = obj.offline.revoke_link(ref)
    emit(data, as_json, lambda: click.echo(f"Revoked link {data['id']}"))


def _ref_id(ref: str) -> str:
    """A URL given for a link is reduced to its token."""
    if "/s/" in ref:
        return ref.rstrip("/").split("/s/", 1)[1].split("/", 1)[0]
    return ref


def _offline_links(obj: Context) -> dict[str, Any]:
    obj.config()  # a clear "run p2psync init" on a missing home
    return obj.offline.links_view()


def _target(item: dict[str, Any]) -> str:
    return f"{item['folder']}/{item['path']}" if item["path"] else item["folder"]


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _limits(item: dict[str, Any]) -> str:
    parts = ["password" if item["has_password"] else "no password"]
    parts.append(f"expires {_when(item['expires'])}" if item["expires"] else "no expiry")
    count = f"{item['downloads']}"
    if item["max_downloads"] is not None:
        count += f"/{item['max_downloads']}"
    parts.append(f"{count} downloads")
    return "  " + ", ".join(parts)
