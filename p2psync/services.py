"""Optional services of a node (discovery, control API), wired by app.serve_node.

Each is started with ``nursery.start`` so the node only reports ready once they are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .errors import ConfigError
from .identity import DeviceID
from .net.endpoints import parse_endpoint

if TYPE_CHECKING:
    from .app import Node

log = logging.getLogger("p2psync.services")

Service = Callable[..., Awaitable[None]]  # takes task_status=

API_ADDRESS_FILE = "api.address"


async def start_services(node: Node, nursery: trio.Nursery) -> None:
    """Start LAN discovery, global discovery and the control API as configured."""
    await start_discovery(node, nursery)
    await _start_api(node, nursery)


async def start_discovery(node: Node, nursery: trio.Nursery) -> None:
    """LAN and global discovery as the config says, each stoppable (``stop_discovery``)."""
    config = node.config
    if config.discovery.mdns:
        await _start_mdns(node, nursery)
    if config.discovery.global_servers:
        await _start_global(node, nursery)
    if config.discovery.syncthing_local:
        await _start_local_v4(node, nursery)


async def stop_discovery(node: Node) -> None:
    """Stop every discovery service and wait until each has shut down."""
    handles, node.discovery_handles = node.discovery_handles, []
    for scope, _ in handles:
        scope.cancel()
    for _, done in handles:
        await done.wait()
    node.mdns = None
    node.global_discovery = None
    node.local_discovery = None
    node.connections.on_disconnected = None
    node.connections.relays.on_change = lambda: None


async def apply_network_changes(node: Node, nursery: trio.Nursery) -> list[str]:
    """Make the listeners and discovery follow a changed config without a restart:
    rebind ``listen`` (the old sockets keep serving if the new ones cannot be bound),
    restart discovery when its settings or the listen addresses changed. Updates
    ``node.running_config`` with what is now in effect; returns a line per change."""
    running, config = node.running_config, node.config
    done: list[str] = []
    if config.listen != running.listen:
        try:
            addresses = await node.connections.rebind(config.listen)
        except OSError as exc:
            log.error(
                "cannot listen on %s (%s); still listening on %s",
                ", ".join(config.listen),
                exc.strerror or exc,
                ", ".join(node.connections.listen_addresses),
            )
        else:
            running = replace(running, listen=config.listen)
            done.append(f"now listening on {', '.join(addresses)}")
    if config.discovery != running.discovery or done:
        await stop_discovery(node)
        await start_discovery(node, nursery)
        running = replace(running, discovery=config.discovery)
        done.append("discovery restarted")
    node.running_config = running
    for line in done:
        log.info("configuration applied: %s", line)
    return done


async def _start_stoppable(nursery: trio.Nursery, node: Node, service: Service) -> Any:
    """Start ``service`` in its own cancel scope, recorded in ``node.discovery_handles``;
    returns what it reports when ready."""
    done = trio.Event()

    async def run(task_status: trio.TaskStatus[tuple[trio.CancelScope, Any]]) -> None:
        try:
            with trio.CancelScope() as scope:
                await service(task_status=_Ready(task_status, scope))
        finally:
            done.set()

    scope, value = await nursery.start(run)
    node.discovery_handles.append((scope, done))
    return value


class _Ready:
    """Passes (scope, value) to the starter when the wrapped service reports ready."""

    def __init__(
        self, task_status: trio.TaskStatus[tuple[trio.CancelScope, Any]], scope: trio.CancelScope
    ) -> None:
        self._task_status = task_status
        self._scope = scope

    def started(self, value: Any = None) -> None:
        self._task_status.started((self._scope, value))


def _listen_port(node: Node) -> int | None:
    addresses = node.connections.listen_addresses
    return parse_endpoint(addresses[0]).port if addresses else None


async def _start_mdns(node: Node, nursery: trio.Nursery) -> None:
    from .discovery.mdns import mdns_interfaces_from_env, serve_mdns

    interfaces = mdns_interfaces_from_env(list(node.config.discovery.mdns_interfaces))

    def is_known(raw: bytes) -> bool:
        return node.config.device(DeviceID(raw)) is not None

    try:
        node.mdns = await _start_stoppable(
            nursery,
            node,
            lambda task_status: serve_mdns(
                device_id=node.device_id,
                listen_port=lambda: _listen_port(node),
                interfaces=interfaces,
                cache=node.cache,
                is_known=is_known,
                task_status=task_status,
            ),
        )
    except Exception as exc:  # LAN discovery is optional: the node works without it
        log.warning("LAN discovery (mDNS) not available: %s", exc)


async def _start_global(node: Node, nursery: trio.Nursery) -> None:
    from .discovery.global_client import FIRST_ANNOUNCE_DELAY, serve_global_discovery

    def lookup_devices() -> list[DeviceID]:
        return [
            d.device_id
            for d in node.config.devices
            if "dynamic" in d.addresses
            and not d.paused
            # relayed: keep looking for a direct address to replace the relay with
            and (
                not node.connections.is_connected(d.device_id)
                or node.connections.is_relayed(d.device_id)
            )
        ]

    gd = await _start_stoppable(
        nursery,
        node,
        lambda task_status: serve_global_discovery(
            identity=node.identity,
            servers=list(node.config.discovery.global_servers),
            get_addresses=lambda: [
                *node.connections.announce_addresses,
                *node.connections.relays.joined_urls(),
            ],
            lookup_devices=lookup_devices,
            cache=node.cache,
            # with relays, wait until they are joined: peers cache what they look up
            first_announce_delay=FIRST_ANNOUNCE_DELAY if node.config.relays else 0.0,
            task_status=task_status,
        ),
    )
    node.global_discovery = gd
    node.connections.relays.on_change = gd.notify_addresses_changed  # (un)joined a relay
    node.connections.on_disconnected = lambda _device: gd.notify_lookup_needed()


async def _start_local_v4(node: Node, nursery: trio.Nursery) -> None:
    from .discovery.local_v4 import LocalDiscoveryV4, broadcast_targets, multicast_interfaces
    from .discovery.mdns import mdns_interfaces_from_env

    chosen = mdns_interfaces_from_env(list(node.config.discovery.mdns_interfaces))
    try:
        targets = await trio.to_thread.run_sync(
            broadcast_targets, chosen if isinstance(chosen, list) else None
        )
        v6_interfaces = await trio.to_thread.run_sync(
            multicast_interfaces, chosen if isinstance(chosen, list) else None
        )
        local = LocalDiscoveryV4(
            device_id=node.device_id,
            get_addresses=lambda: [
                *node.connections.announce_addresses,
                *node.connections.relays.joined_urls(),
            ],
            cache=node.cache,
            is_known=lambda raw: node.config.device(DeviceID(raw)) is not None,
            targets=targets,
            v6_interfaces=v6_interfaces,
        )
        node.local_discovery = await _start_stoppable(nursery, node, local.serve)
    except (OSError, ConfigError) as exc:  # LAN discovery is optional
        log.warning("local discovery (Syncthing v4) not available: %s", exc)


async def _start_api(node: Node, nursery: trio.Nursery) -> None:
    try:
        from .api.server import serve_api
    except ImportError:
        return
    host, _, port = node.config.api.rpartition(":")
    host = host.strip("[]")
    address = await nursery.start(
        lambda task_status: serve_api(node, host=host, port=int(port), task_status=task_status)
    )
    node.api_address = address
    path = node.home / API_ADDRESS_FILE
    log.info("control API on http://%s", address)
    log.info("web interface on http://%s/ (`p2psync open` opens it signed in)", address)
    try:
        await trio.to_thread.run_sync(write_api_address, path, f"{address}\n")
    except OSError as exc:  # e.g. a full disk: keep serving; the CLI uses the config's address
        log.error(
            "cannot write %s (%s): `p2psync` commands find the daemon at the configured "
            "API address %s%s",
            path,
            exc,
            node.config.api,
            " only once the port is fixed (it is 0)" if node.config.api.endswith(":0") else "",
        )


def write_api_address(path: Path, text: str) -> None:
    """Write the API address atomically; on a full disk, overwrite the previous run's file
    in place (its block is already allocated), else remove it so that no stale address
    is left for the CLI. Raises OSError if the address could not be written."""
    tmp = path.with_name(f".{API_ADDRESS_FILE}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
        return
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        failure = exc
    try:
        with open(path, "r+b") as f:  # no truncation first: the block stays allocated
            f.write(text.encode())
            f.truncate(len(text.encode()))
            f.flush()
            os.fsync(f.fileno())
        log.warning("wrote %s in place (%s)", path, failure)
        return
    except OSError:
        pass
    path.unlink(missing_ok=True)
    raise failure
