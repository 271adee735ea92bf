"""Human renderings of API data for the CLI (rich). Every name from a config, a peer or
the filesystem goes through ``textsafe.safe`` and into ``Text`` objects, so neither
control characters nor rich markup in a name can change what the terminal shows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..textsafe import safe

STATE_STYLES = {
    "idle": "green",
    "scanning": "cyan",
    "syncing": "blue",
    "error": "red",
    "paused": "yellow",
    "starting": "dim",
    "stopped": "dim",
}


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def short_id(device_id: str) -> str:
    return device_id.split("-", 1)[0]


def status_renderable(data: dict[str, Any]) -> RenderableType:
    """The `p2psync status` view of ``{"system", "folders", "devices"}``."""
    system = data["system"]
    header = Text()
    header.append("This device: ", style="bold")
    header.append(safe(system["name"]))
    header.append(f"  {system['device_id']}\n")
    header.append(
        f"up {human_duration(system['uptime'])}, listening on "
        f"{', '.join(safe(a) for a in system['listen_addresses']) or '-'}, "
        f"API http://{safe(str(system.get('api_address')))}",
        style="dim",
    )
    for relay in system.get("relays", []):
        state = "joined" if relay["joined"] else f"not joined: {safe(relay['last_error'] or '-')}"
        header.append(f"\nrelay {safe(relay['url'])}: {state}", style="dim")
    if system.get("api_warning"):
        header.append(f"\nWarning: {safe(system['api_warning'])}", style="bold yellow")
    if system.get("config_error"):
        header.append(
            f"\nconfig.toml is invalid, running with the last good config: "
            f"{safe(system['config_error'])}",
            style="red",
        )
    return Group(
        header, Text(""), folders_table(data["folders"]), Text(""), devices_table(data["devices"])
    )


def folders_table(folders: list[dict[str, Any]]) -> RenderableType:
    if not folders:
        return Text("No folders. Add one with: p2psync folder add PATH")
    table = Table(title="Folders", title_justify="left", show_edge=False, expand=False)
    for col in ("Folder", "State", "Progress", "", "Synced", "Need"):
        table.add_column(col)
    notes: list[Text] = []
    for f in folders:
        glob, need = f["global"], f["need"]
        done = max(0, glob["bytes"] - need["bytes"] + f.get("in_place_bytes", 0))
        name = Text(safe(f["id"]))
        if f.get("label") and f["label"] != f["id"]:
            name.append(f" ({safe(f['label'])})", style="dim")
        state = Text(f["state"], style=STATE_STYLES.get(f["state"], ""))
        table.add_row(
            name,
            state,
            ProgressBar(
                total=max(glob["bytes"], 1), completed=done if glob["bytes"] else 1, width=24
            ),
            Text(f"{f['completion']:.0f}%"),
            Text(f"{human_bytes(done)} / {human_bytes(glob['bytes'])}"),
            Text(
                f"{f['need_items']} items, "
                f"{human_bytes(need['bytes'] - f.get('in_place_bytes', 0))}"
                if f["need_items"]
                else "-"
            ),
        )
        if f.get("reason"):
            notes.append(Text(f"  {safe(f['id'])}: {safe(f['reason'])}", style="yellow"))
        if f.get("scan"):
            notes.append(Text(f"  {safe(f['id'])}: {scan_line(f['scan'])}", style="cyan"))
        elif f.get("state") not in (None, "stopped", "paused") and not f.get(
            "initial_scan_done", True
        ):
            notes.append(Text(f"  {safe(f['id'])}: initial scan not complete yet", style="cyan"))
        for err in f.get("item_errors", [])[:10]:
            notes.append(
                Text(f"  {safe(f['id'])}: {safe(err['name'])}: {safe(err['error'])}", style="red")
            )
        sel = f.get("selection") or {}
        if sel.get("selected"):
            line = (
                f"  {safe(f['id'])}: selective sync keeps "
                f"{', '.join(safe(p) for p in sel['selected'])}; "
                f"{sel['left_out_items']} items ({human_bytes(sel['left_out_bytes'])}) left out"
            )
            if sel.get("kept_count"):
                line += f", {sel['kept_count']} outside it kept here (local changes)"
            notes.append(Text(line, style="cyan"))
        for item in f.get("not_synced", [])[:10]:
            notes.append(
                Text(
                    f"  {safe(f['id'])}: {safe(item['name'])}: not synced here: "
                    f"{safe(item['error'])}",
                    style="yellow",
                )
            )
        if f.get("local_changes"):
            notes.append(
                Text(
                    f"  {safe(f['id'])}: local changes: {f['local_changes']} "
                    f"(revert to drop them: p2psync folder revert {safe(f['id'])})",
                    style="yellow",
                )
            )
        if f.get("behind"):
            notes.append(
                Text(
                    f"  {safe(f['id'])}: behind: {f['behind']} "
                    f"(override to push yours: p2psync folder override {safe(f['id'])})",
                    style="yellow",
                )
            )
        notes.extend(_pull_notes(f))
        behind = [d for d in f.get("devices", []) if not d.get("in_sync")]
        for d in behind:
            who = safe(d.get("name") or "") or short_id(d["id"])
            if d.get("completion") is None:
                note = f"{who} is not in sync yet"
            elif d.get("need_items") is None:
                note = f"{who} has not sent its index yet"
            else:
                note = (
                    f"{who} has {d['completion']:.0f}% "
                    f"({d['need_items']} items, {human_bytes(d['need_bytes'])} to go)"
                )
            notes.append(Text(f"  {safe(f['id'])}: {note}", style="dim"))
    return Group(table, *notes) if notes else table


def _pull_notes(f: dict[str, Any]) -> list[Text]:
    """What is being pulled, from whom, and the ETA."""
    notes = []
    for p in f.get("pulling", [])[:5]:
        line = Text(f"  {safe(f['id'])}: pulling {safe(p['name'])} {p['percent']:.0f}% ")
        line.append(f"({human_bytes(p['done'])} of {human_bytes(p['size'])})")
        sources = [safe(s.get("name") or "") or short_id(s["id"]) for s in p.get("from", [])]
        if sources:
            line.append(f" from {', '.join(sources)}")
        notes.append(line)
    if f.get("need_items") and (f.get("pull_bps") or f.get("pulling")):
        eta = f.get("eta_s")
        rate = f"{human_bytes(f.get('pull_bps') or 0)}/s"
        when = human_duration(eta) if eta is not None else "unknown"
        notes.append(Text(f"  {safe(f['id'])}: {rate}, ETA {when}", style="cyan"))
    return notes


def scan_line(scan: dict[str, Any]) -> str:
    """'initial scan: 120 files, 1.2 GiB hashed in 3.1 s (390 MiB/s)'."""
    what = "initial scan" if scan.get("initial") else "scanning"
    return (
        f"{what}: {scan['files_hashed']} files, {human_bytes(scan['bytes_hashed'])} hashed "
        f"in {scan['seconds']:.1f} s ({human_bytes(scan['bytes_per_s'])}/s)"
    )


def devices_table(devices: list[dict[str, Any]]) -> RenderableType:
    if not devices:
        return Text("No devices. Add one with: p2psync peer add DEVICE-ID")
    table = Table(title="Devices", title_justify="left", show_edge=False, expand=False)
    for col in ("Device", "ID", "Connection", "Down", "Up", "Received", "Sent"):
        table.add_column(col)
    for d in devices:
        if d["paused"]:
            conn = Text("paused", style="yellow")
        elif d["connected"]:
            via = ", ".join(safe(x) for x in (d.get("protocol"), d.get("client")) if x)
            relayed = "relayed, " if d.get("relayed") else ""
            conn = Text(
                f"connected {safe(d['address'] or '')}" + (f" ({relayed}{via})" if via else ""),
                style="green",
            )
        else:
            conn = Text(disconnected_note(d), style="yellow" if d.get("refusal") else "dim")
        table.add_row(
            Text(safe(d["name"]) or "-"),
            Text(short_id(d["id"])),
            conn,
            Text(f"{human_bytes(d['in_bps'])}/s" if d["connected"] else "-"),
            Text(f"{human_bytes(d['out_bps'])}/s" if d["connected"] else "-"),
            Text(human_bytes(d["bytes_in"]) if d["connected"] else "-"),
            Text(human_bytes(d["bytes_out"]) if d["connected"] else "-"),
        )
    return table


def disconnected_note(d: dict[str, Any], now: float | None = None) -> str:
    """Why a device is not connected, from its /api/devices entry: ``refused by the peer:
    unknown device; last seen 5m 3s ago; retry in 20s``."""
    now = dt.datetime.now().timestamp() if now is None else now
    parts = [safe(d.get("last_error") or "") or "disconnected"]
    if d.get("last_seen"):
        parts.append(f"last seen {human_duration(max(0.0, now - d['last_seen']))} ago")
    else:
        parts.append("never connected")
    if d.get("retry_in") is not None:
        parts.append(f"retry in {human_duration(d['retry_in'])}")
    return "; ".join(parts)


def event_line(event: dict[str, Any]) -> str:
    """One event as a safe single line: ``#12 14:03:05 ItemFinished folder=docs item=a.txt``."""
    when = dt.datetime.fromtimestamp(event["time"]).strftime("%H:%M:%S")
    parts = [f"#{event['id']}", when, safe(str(event["type"]))]
    data = dict(event.get("data") or {})
    name = data.pop("device_name", None)
    if name and data.get("device"):  # the name the user gave, then the short ID
        data["device"] = f"{name} ({short_id(str(data['device']))})"
    for key, value in sorted(data.items()):
        if value is None or value == "":
            continue
        parts.append(f"{safe(str(key))}={safe(str(value))}")
    return " ".join(parts)
