"""`p2psync relay ...`: the Syncthing relays this device joins (config key ``relays``)."""

from __future__ import annotations

import click

from ..config import argument_errors, validate_relay_url
from ..errors import NotFoundError
from ..protocol.relay import parse_relay_url
from ..textsafe import safe
from .support import Context, emit, json_option


@click.group()
def relay() -> None:
    """Manage relays (relay://HOST:PORT/?id=RELAY-DEVICE-ID)."""


def _set(obj: Context, relays: list[str]) -> None:
    client = obj.daemon()
    if client is not None:
        client.post("/api/config/relays", {"relays": relays})
    else:
        from dataclasses import replace

        obj.offline.save_config(replace(obj.config(), relays=tuple(relays)))


def _canonical(url: str) -> str:
    with argument_errors():
        validate_relay_url(url, "relay")
    return str(parse_relay_url(url))


@relay.command("add")
@click.argument("url")
@click.pass_obj
def relay_add(obj: Context, url: str) -> None:
    """Join a relay; peers that cannot dial us directly reach us through it."""
    canonical = _canonical(url)
    relays = [r for r in obj.config().relays if _canonical(r) != canonical]
    _set(obj, [*relays, canonical])
    click.echo(f"Added relay {safe(canonical)}")


@relay.command("remove")
@click.argument("url")
@click.pass_obj
def relay_remove(obj: Context, url: str) -> None:
    """Leave a relay."""
    canonical = _canonical(url)
    relays = list(obj.config().relays)
    kept = [r for r in relays if _canonical(r) != canonical]
    if len(kept) == len(relays):
        raise NotFoundError(f"relay {canonical} is not configured")
    _set(obj, kept)
    click.echo(f"Removed relay {safe(canonical)}")


@relay.command("list")
@json_option
@click.pass_obj
def relay_list(obj: Context, as_json: bool) -> None:
    """The configured relays (with the daemon: joined or why not)."""
    client = obj.daemon()
    if client is not None:
        data = client.get("/api/system")["relays"]
    else:
        data = [{"url": r, "joined": None, "last_error": ""} for r in obj.config().relays]

    def human() -> None:
        if not data:
            click.echo("No relays. Add one with: p2psync relay add relay://HOST:PORT/?id=ID")
        for r in data:
            state = {True: "joined", False: "not joined", None: "daemon not running"}[r["joined"]]
            error = f" ({safe(r['last_error'])})" if r["last_error"] else ""
            click.echo(f"{safe(r['url'])}  {state}{error}")

    emit(data, as_json, human)
