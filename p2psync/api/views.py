"""JSON views of a running node: folders, devices, system. Blocking index reads run in a
worker thread; everything else reads in-memory state."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import trio

from .. import __version__
from ..config import Config, DeviceConfig, FolderConfig
from ..identity import DeviceID
from ..scanner.scan import FLAG_NOT_SELECTED
from ..sync.overrides import FLAG_RECEIVE_ONLY
from ..values import FolderKind
from .auth import exposure_warning
from .progress import (
    CompletionCache,
    completion_json,
    completion_percent,
    eta_seconds,
    pulling_json,
)
from .rates import RateMeter
from .registry import FolderStatusView, RunningNode

if TYPE_CHECKING:
    from ..index import Counts, IndexStore

CONFLICT_MARK = ".sync-conflict-"
MAX_LISTED = 10_000  # conflicts / versions / errors returned at most


def counts_json(c: Counts) -> dict[str, int]:
    return {
        "files": c.files,
        "directories": c.directories,
        "symlinks": c.symlinks,
        "deleted": c.deleted,
        "bytes": c.bytes,
    }


def _same_content(a: Counts, b: Counts) -> bool:
    return (a.files, a.directories, a.symlinks, a.bytes) == (
        b.files,
        b.directories,
        b.symlinks,
        b.bytes,
    )


def _folder_counts(
    index: IndexStore, fc: FolderConfig, completions: CompletionCache | None = None
) -> dict[str, Any]:
    """Blocking: the folder's global/local/need counts and each remote device's counts
    and completion."""
    glob = index.global_counts(fc.id)
    local = index.counts(fc.id)
    need = index.need_counts(fc.id)
    known = set(index.devices(fc.id))
    completions = completions or CompletionCache()
    devices = {}
    for d in fc.devices:
        raw = d.raw
        remote = index.counts(fc.id, raw)
        # "in sync" is judged from counts (cheap): same items and bytes as the global
        # state. A device that never sent an index for the folder is not in sync.
        in_sync = raw in known and _same_content(remote, glob)
        view: dict[str, Any] = {"in_sync": in_sync, "local": counts_json(remote)}
        if raw in known:
            view.update(completion_json(glob, completions.need_of(index, fc.id, raw)))
        else:  # no index from it yet: nothing is known to be there
            view.update(completion=0.0, need_bytes=glob.bytes, need_items=None)
        devices[str(d)] = view
    changes = (
        index.count_local_flagged(fc.id, FLAG_RECEIVE_ONLY)
        if fc.type is FolderKind.RECEIVE_ONLY
        else 0
    )
    left_out = index.local_flagged_totals(fc.id, FLAG_NOT_SELECTED) if fc.selected else (0, 0)
    return {
        "left_out": left_out,
        "global": glob,
        "local": local,
        "need": need,
        "devices": devices,
        "local_changes": changes,
    }


def _scan_json(status: FolderStatusView | None) -> dict[str, Any] | None:
    """The running scan's progress (files and bytes hashed, rate), or None."""
    progress = status.scan_progress if status is not None else None
    if status is None or progress is None:
        return None
    return {
        "initial": not status.initial_scan_done,
        **progress.snapshot(time.monotonic()),
    }


async def folder_view(
    node: RunningNode,
    fc: FolderConfig,
    limiter: trio.CapacityLimiter,
    meter: RateMeter | None = None,
    completions: CompletionCache | None = None,
) -> dict[str, Any]:
    counts = await trio.to_thread.run_sync(
        _folder_counts, node.index, fc, completions, limiter=limiter
    )
    glob, need = counts["global"], counts["need"]
    runner = node.model.folders.get(fc.id)
    status = runner.status if runner is not None else None
    state = status.state if status else "stopped"
    if fc.paused and state not in ("scanning", "syncing"):
        state = "paused"
    progress = runner.puller.progress if runner is not None else None
    in_place = progress.bytes_in_place() if progress is not None else 0
    in_place = min(in_place, need.bytes)  # a record flushed since the counts were read
    done = max(0, glob.bytes - need.bytes + in_place)
    need_items = need.files + need.directories + need.symlinks + need.deleted
    rate = 0.0
    if progress is not None and meter is not None:
        rate, _ = meter.sample(
            ("folder", fc.id), trio.current_time(), progress.pulled, 0, node.started_at
        )
    cfg = node.config
    devices = []
    for did in fc.devices:
        dc = cfg.device(did)
        devices.append(
            {
                "id": str(did),
                "name": dc.name if dc else "",
                "connected": node.connections.is_connected(did),
                **counts["devices"].get(str(did), {"in_sync": False, "local": None}),
            }
        )
    errors = dict(status.item_errors) if status else {}
    problems = list(status.scan_problems) if status else []
    not_synced = dict(status.not_synced) if status else {}
    return {
        "id": fc.id,
        "label": fc.label,
        "path": fc.path,
        "type": fc.type,
        "paused": fc.paused,
        "state": state,
        "reason": status.reason if status else "",
        "last_scan": (status.last_scan or None) if status else None,
        "initial_scan_done": status.initial_scan_done if status else False,
        "scan": _scan_json(status),
        "global": counts_json(glob),
        "local": counts_json(counts["local"]),
        "need": counts_json(need),
        "need_items": need_items,
        "in_sync": need_items == 0 and not counts["local_changes"],
        # receive-only: local changes the cluster does not have (`folder revert` drops them)
        "local_changes": counts["local_changes"],
        # send-only: items where the cluster has newer versions (`folder override` pushes ours)
        "behind": need_items if fc.type is FolderKind.SEND_ONLY else 0,
        "completion": completion_percent(glob.bytes, glob.bytes - done, need_items),
        "in_place_bytes": in_place,
        "pull_bps": round(rate, 1),
        "eta_s": eta_seconds(glob.bytes - done, rate) if need_items else None,
        "pulling": pulling_json(runner, lambda did: _device_name(cfg, did)),
        "item_errors": [{"name": n, "error": e} for n, e in sorted(errors.items())[:MAX_LISTED]],
        "scan_problems": [{"name": n, "error": e} for n, e in problems[:MAX_LISTED]],
        "not_synced": [{"name": n, "error": e} for n, e in sorted(not_synced.items())[:MAX_LISTED]],
        "conflicts_created": status.conflicts if status else 0,
        "devices": devices,
        # selective sync: what this device keeps, and what it leaves out (selection.py)
        "selection": {
            "selected": list(fc.selected),
            "left_out_items": counts["left_out"][0],
            "left_out_bytes": counts["left_out"][1],
            "kept_count": status.selection_kept_count if status else 0,
        },
    }


def _device_name(cfg: Config, did: DeviceID) -> str:
    dc = cfg.device(did)
    return dc.name if dc is not None and dc.name else did.short_str()


def device_view(node: RunningNode, device: DeviceConfig, meter: RateMeter) -> dict[str, Any]:
    did = device.id
    peer = node.model.connections.get(did)
    connected = node.connections.is_connected(did) and peer is not None and not peer.closed
    now = trio.current_time()
    view: dict[str, Any] = {
        "id": str(device.id),
        "name": device.name,
        "addresses": [str(a) for a in device.addresses],
        "paused": device.paused,
        "introducer": device.introducer,
        "connected": connected,
        "address": None,
        "relayed": False,  # connected through a relay (address is the relay's URL)
        "protocol": None,  # "p2psync/1" or "bep/1.0" while connected
        "client": None,  # what the peer runs, from its Hello ("syncthing v1.19.2")
        "connected_for": None,
        "bytes_in": 0,
        "bytes_out": 0,
        "in_bps": 0.0,
        "out_bps": 0.0,
        "folders": [f.id for f in node.config.folders if device.id in f.devices],
        **dial_view(node, did, now),
    }
    if connected and peer is not None:  # (connected implies a peer)
        stats = peer.stats
        in_bps, out_bps = meter.sample(
            did, now, stats.bytes_in, stats.bytes_out, stats.connected_at
        )
        hello = peer.protocol.their_hello
        view.update(
            address=peer.address,
            relayed=node.connections.is_relayed(did),
            protocol=peer.protocol.wire.name,
            client=f"{hello.client_name} {hello.client_version}" if hello else None,
            connected_for=round(now - stats.connected_at, 3),
            bytes_in=stats.bytes_in,
            bytes_out=stats.bytes_out,
            in_bps=round(in_bps, 1),
            out_bps=round(out_bps, 1),
        )
    else:
        meter.forget(did)
    return view


def dial_view(node: RunningNode, did: DeviceID, now: float) -> dict[str, Any]:
    """Why a device is not connected: the peer's refusal, the last error, when it was last
    connected (Unix time) and when the next dial is due."""
    state = node.connections.dial_backoff.states.get(did)
    if state is None:
        return {"last_seen": None, "last_error": "", "refusal": "", "failures": 0, "retry_in": None}
    return {
        "last_seen": state.last_seen,
        "last_error": state.last_error,
        "refusal": state.refusal,
        "failures": state.failures,
        "retry_in": round(max(0.0, state.next_attempt - now), 1) if state.failures else None,
    }


def system_view(node: RunningNode) -> dict[str, Any]:
    cfg = node.config
    mdns = node.mdns
    return {
        "device_id": str(node.device_id),
        "name": cfg.name,
        "version": __version__,
        "pid": os.getpid(),
        "uptime": round(trio.current_time() - node.started_at, 3),
        "time": time.time(),
        "listen_addresses": list(node.connections.listen_addresses),
        "api_address": node.api_address,
        "api_warning": exposure_warning(node.api_address),
        "home": str(node.home),
        "mdns": mdns is not None,
        "global_discovery": node.global_discovery is not None,
        "folders": len(cfg.folders),
        "devices": len(cfg.devices),
        "connected": sum(1 for d in cfg.devices if node.connections.is_connected(d.id)),
        "config_error": node.config_error,
        "relays": [
            {"url": str(s.url), "joined": s.joined, "last_error": s.last_error}
            for s in node.connections.relays.statuses()
        ],
    }


def conflicts_in(index: IndexStore, folder_id: str) -> list[dict[str, Any]]:
    """Blocking: live local entries whose name marks a conflict copy."""
    out = []
    for fi in index.iter_local(folder_id):
        if CONFLICT_MARK in fi.name and not fi.deleted:
            out.append({"name": fi.name, "size": fi.size, "modified": fi.modified_ns / 1e9})
            if len(out) >= MAX_LISTED:
                break
    return out
