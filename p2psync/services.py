"""Optional services of a node (discovery, control API), wired by wiring.serve_node.

Each is started with ``nursery.start`` so the node only reports ready once they are.
They reach the node through ``ServiceHost`` (what they read and record); the discovery
services running now are held by ``RunningDiscovery``, which the wiring builds before
the connection manager so that the manager's and the relays' events reach them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .api.registry import RunningNode
from .config import Config
from .discovery.cache import AddressCache
from .endpoints import parse_endpoint, uses_discovery
from .errors import ConfigError
from .identity import DeviceID, Identity
from .net.manager import ConnectionManager

if TYPE_CHECKING:
    from .discovery.global_client import GlobalDiscovery
    from .discovery.local_v4 import LocalDiscoveryV4
    from .discovery.mdns import MdnsDiscovery

log = logging.getLogger("p2psync.services")

Service = Callable[..., Awaitable[None]]  # takes task_status=

API_ADDRESS_FILE = "api.address"


@dataclass
class RunningDiscovery:
    """The discovery services running now (None when off or stopped) and their handles
    (cancel scope, done event) for ``stop_discovery``. The connection manager and the
    relays are built with its ``device_disconnected`` / ``addresses_changed``."""

    mdns: MdnsDiscovery | None = None
    global_discovery: GlobalDiscovery | None = None
    local_discovery: LocalDiscoveryV4 | None = None
    handles: list[tuple[trio.CancelScope, trio.Event]] = field(default_factory=list)

    def device_disconnected(self, device: DeviceID) -> None:
        """A trusted connection ended: global discovery looks the device up again."""
        if self.global_discovery is not None:
            self.global_discovery.notify_lookup_needed()

    def addresses_changed(self) -> None:
        """Joined or left a relay: global discovery announces our addresses again."""
        if self.global_discovery is not None:
            self.global_discovery.notify_addresses_changed()


class ServiceHost(Protocol):
    """What the services need from the node: its parts, and where they record what runs."""

    home: Path
    identity: Identity
    cache: AddressCache
    discovery: RunningDiscovery
    running_config: Config
    api_address: str | None

    @property
    def connections(self) -> ConnectionManager: ...

    @property
    def config(self) -> Config: ...

    @property
    def device_id(self) -> DeviceID: ...


class ApiHost(ServiceHost, RunningNode, Protocol):
    """The node as the API service needs it: the services' view and the API's."""


async def start_discovery(node: ServiceHost, nursery: trio.Nursery) -> None:
    """LAN and global discovery as the config says, each stoppable (``stop_discovery``)."""
    config = node.config
    if config.discovery.mdns:
        await _start_mdns(node, nursery)
    if config.discovery.global_servers:
        await _start_global(node, nursery)
    if config.discovery.syncthing_local:
        await _start_local_v4(node, nursery)


async def stop_discovery(node: ServiceHost) -> None:
    """Stop every discovery service and wait until each has shut down."""
    running = node.discovery
    handles, running.handles = running.handles, []
    for scope, _ in handles:
        scope.cancel()
    for _, done in handles:
        await done.wait()
    running.mdns = None
    running.global_discovery = None
    running.local_discovery = None


async def apply_network_changes(node: ServiceHost, nursery: trio.Nursery) -> list[str]:
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
                ", ".join(map(str, config.listen)),
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


async def _start_stoppable(nursery: trio.Nursery, node: ServiceHost, service: Service) -> Any:
    """Start ``service`` in its own cancel scope, recorded in ``node.discovery.handles``;
    returns what it reports when ready."""
    scope = trio.CancelScope()
    done = trio.Event()

    async def run(task_status: trio.TaskStatus[Any]) -> None:
        try:
            with scope:
                await service(task_status=task_status)
        finally:
            done.set()

    value = await nursery.start(run)
    node.discovery.handles.append((scope, done))
    return value


def _listen_port(node: ServiceHost) -> int | None:
    addresses = node.connections.listen_addresses
    return parse_endpoint(addresses[0]).port if addresses else None


async def _start_mdns(node: ServiceHost, nursery: trio.Nursery) -> None:
    from .discovery.mdns import mdns_interfaces_from_env, serve_mdns

    interfaces = mdns_interfaces_from_env(list(node.config.discovery.mdns_interfaces))

    def is_known(raw: bytes) -> bool:
        return node.config.device(DeviceID(raw)) is not None

    try:
        node.discovery.mdns = await _start_stoppable(
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


async def _start_global(node: ServiceHost, nursery: trio.Nursery) -> None:
    from .discovery.global_client import FIRST_ANNOUNCE_DELAY, serve_global_discovery

    def lookup_devices() -> list[DeviceID]:
        return [
            d.id
            for d in node.config.devices
            if uses_discovery(d.addresses)
            and not d.paused
            # relayed: keep looking for a direct address to replace the relay with
            and (not node.connections.is_connected(d.id) or node.connections.is_relayed(d.id))
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
    node.discovery.global_discovery = gd  # now told of relay changes and disconnections


async def _start_local_v4(node: ServiceHost, nursery: trio.Nursery) -> None:
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
        node.discovery.local_discovery = await _start_stoppable(nursery, node, local.serve)
    except (OSError, ConfigError) as exc:  # LAN discovery is optional
        log.warning("local discovery (Syncthing v4) not available: %s", exc)


async def start_api(node: ApiHost, nursery: trio.Nursery) -> None:
    """The control API and the web interface, on the configured address; the bound
    address is recorded in ``node.api_address`` and ``<home>/api.address``."""
    try:
        from .api.server import serve_api
    except ImportError:
        return
    host, _, port = node.config.api.rpartition(":")
    host = host.strip("[]")
    from .web import mount  # the web interface, on the same address (DESIGN §11)

    address = await nursery.start(
        lambda task_status: serve_api(
            node, host=host, port=int(port), web=mount, task_status=task_status
        )
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
