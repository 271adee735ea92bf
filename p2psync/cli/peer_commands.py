"""`p2psync peer ...`: trusted devices."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from ..api import edits
from ..config import argument_errors, device_to_dict, parse_device_address
from ..errors import NotFoundError, UsageError
from ..textsafe import safe
from ..values import DYNAMIC
from .support import Context, emit, json_option, parse_device_id

# ---- peers -----------------------------------------------------------------------------


@click.group()
def peer() -> None:
    """Manage trusted devices."""


@peer.command("add")
@click.argument("device_id")
@click.option("--name", default="", help="A name for the device.")
@click.option(
    "--address",
    "addresses",
    multiple=True,
    help="tcp://HOST:PORT or a relay:// URL, tried before the discovered ones (default: dynamic).",
)
@click.option(
    "--no-dynamic", is_flag=True, help="Only the --address given: no discovery for this device."
)
@click.option("--introducer", is_flag=True, help="Accept devices this one introduces.")
@click.pass_obj
def peer_add(
    obj: Context,
    device_id: str,
    name: str,
    addresses: tuple[str, ...],
    no_dynamic: bool,
    introducer: bool,
) -> None:
    """Trust a device (by its ID) and optionally give its address."""
    did = parse_device_id(device_id)
    if no_dynamic and not addresses:
        raise UsageError("--no-dynamic needs at least one --address")
    if addresses and not no_dynamic:  # an address is a hint: discovery keeps working
        addresses = tuple(dict.fromkeys((*addresses, DYNAMIC)))
    cfg = obj.config()
    if did == obj.own_id():
        raise UsageError("that is this device's own ID")
    with argument_errors():  # refused here, with the option's name, before any edit
        for i, a in enumerate(addresses):
            parse_device_address(a, f"--address[{i}]")
    client = obj.daemon()
    if client is not None:
        body = {
            "id": str(did),
            "name": name,
            "addresses": list(addresses),
            "introducer": introducer,
        }
        existed = bool(client.post("/api/devices", body)["updated"])
    else:
        new, existed = edits.add_device(
            cfg, obj.own_id(), did, name=name, addresses=addresses, introducer=introducer
        )
        obj.offline.add_device(new, str(did))
    click.echo(f"{'Updated' if existed else 'Added'} device {did}")


@peer.command("list")
@json_option
@click.pass_obj
def peer_list(obj: Context, as_json: bool) -> None:
    """List trusted devices (with the daemon: connection, refusal reason, last seen)."""
    client = obj.daemon()
    if client is not None:
        data: list[dict[str, Any]] = client.get("/api/devices")
    else:
        data = [device_to_dict(d) for d in obj.config().devices]

    def human() -> None:
        from ..api.render import disconnected_note  # rich, only for this output

        if not data:
            click.echo("No devices. Add one with: p2psync peer add DEVICE-ID")
        for d in data:
            flags = " (paused)" if d["paused"] else ""
            addresses = ", ".join(safe(a) for a in d["addresses"])
            click.echo(f"{d['id']}  {safe(d['name']) or '-'}  {addresses}{flags}")
            if "connected" not in d or d["paused"]:
                continue
            if d["connected"]:
                relayed = " (relayed)" if d.get("relayed") else ""
                click.echo(f"    connected at {safe(d['address'] or '')}{relayed}")
            else:
                click.echo(f"    {disconnected_note(d)}")

    emit(data, as_json, human)


@peer.command("remove")
@click.argument("device_id")
@click.pass_obj
def peer_remove(obj: Context, device_id: str) -> None:
    """Stop trusting a device (and unshare every folder with it)."""
    did = parse_device_id(device_id)
    cfg = obj.config()
    if cfg.device(did) is None:
        raise NotFoundError(f"device {did} is not configured")
    client = obj.daemon()
    if client is not None:
        client.delete(f"/api/devices/{did}")
    else:
        obj.offline.save_config(edits.remove_device(cfg, did))
    click.echo(f"Removed device {did}")


def _peer_pause(obj: Context, device_id: str, paused: bool) -> None:
    did = parse_device_id(device_id)
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/devices/{did}/{'pause' if paused else 'resume'}")
    else:
        obj.offline.save_config(edits.set_device_paused(obj.config(), did, paused))
    click.echo(f"{'Paused' if paused else 'Resumed'} device {did}")


@peer.command("pause")
@click.argument("device_id")
@click.pass_obj
def peer_pause(obj: Context, device_id: str) -> None:
    """Stop syncing with a device (it stays trusted)."""
    _peer_pause(obj, device_id, True)


@peer.command("resume")
@click.argument("device_id")
@click.pass_obj
def peer_resume(obj: Context, device_id: str) -> None:
    """Resume syncing with a paused device."""
    _peer_pause(obj, device_id, False)


@peer.command("pending")
@json_option
@click.pass_obj
def peer_pending(obj: Context, as_json: bool) -> None:
    """Devices that tried to connect but are not trusted yet."""
    entries = obj.offline.pending_devices()

    def human() -> None:
        if not entries:
            click.echo("No pending devices.")
        for e in entries:
            click.echo(f"{e.device_id}  {safe(e.name) or '-'}  from {safe(e.address)}")
            click.echo(f"    accept with: p2psync peer add {e.device_id}")

    emit([asdict(e) for e in entries], as_json, human)


@peer.command("reject")
@click.argument("device_id")
@click.pass_obj
def peer_reject(obj: Context, device_id: str) -> None:
    """Forget a pending device (it is listed again if it connects again)."""
    did = str(parse_device_id(device_id))
    if not any(e.device_id == did for e in obj.offline.pending_devices()):
        raise NotFoundError(f"device {did} is not pending (see `p2psync peer pending`)")
    client = obj.daemon()
    if client is not None:
        client.post(f"/api/pending/devices/{did}/reject")
    else:
        obj.offline.forget_pending_device(did)
    click.echo(f"Rejected device {did}")


@peer.command("discovered")
@json_option
@click.pass_obj
def peer_discovered(obj: Context, as_json: bool) -> None:
    """Unknown devices seen on the LAN (mDNS); needs the daemon."""
    data = obj.need_daemon().get("/api/discovered")

    def human() -> None:
        if not data["enabled"]:
            click.echo("LAN discovery (mDNS) is off.")
        elif not data["devices"]:
            click.echo("No unknown devices seen on the LAN.")
        for d in data["devices"]:
            where = ", ".join(safe(a) for a in d["addresses"])
            click.echo(f"{d['id']}  {where}  seen {d['seen_ago']:.0f}s ago")
            click.echo(f"    trust with: p2psync peer add {d['id']}")

    emit(data, as_json, human)
