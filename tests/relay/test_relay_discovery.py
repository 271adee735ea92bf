"""Nodes that accept no inbound connections at all find each other's relay through the
discovery server and sync through it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio
from nodes import Cluster, wait_for
from strelaysrv_process import Relay

from discovery_server.server import serve_discovery
from discovery_server.service import ServerSettings
from discovery_server.stores import open_store
from p2psync.config import DiscoveryConfig, load_config, save_config


async def test_relay_addresses_are_announced_and_dialled(tmp_path: Path, relay: Relay) -> None:
    async with trio.open_nursery() as nursery:
        async with open_store("memory", clock=lambda: trio.current_time()) as store:
            urls, _service = await nursery.start(
                lambda task_status: serve_discovery(
                    ServerSettings(retry_after=1),
                    store,
                    listen="127.0.0.1:0",
                    task_status=task_status,
                )
            )
            disco = DiscoveryConfig(mdns=False, global_servers=(urls[0],))
            cluster = Cluster(tmp_path, ["a", "b"], dynamic=True, discovery=disco)
            for home in cluster.homes.values():  # no listener: only the relay reaches them
                cfg = load_config(home)
                save_config(replace(cfg, listen=(), relays=(relay.url,)), home)
            async with trio.open_nursery() as nodes:
                await cluster.start_all(nodes)
                a, b = cluster.nodes["a"], cluster.nodes["b"]
                assert a.connections.listen_addresses == []
                await wait_for(
                    lambda: (
                        a.connections.is_relayed(b.device_id)
                        and b.connections.is_relayed(a.device_id)
                    ),
                    60,
                    "a relayed connection",
                )
                # while relayed, discovery keeps looking for a direct address
                assert b.device_id in a.global_discovery.lookup_devices()  # type: ignore[attr-defined]
                # what the server handed out is the relay, in its canonical form
                looked_up = a.cache.addresses(b.device_id.raw, trio.current_time())
                assert looked_up == [relay.url]
                (cluster.data("a") / "via-discovery.txt").write_text("found through the relay")
                cluster.scan("a")
                await wait_for(
                    lambda: (cluster.data("b") / "via-discovery.txt").exists(), 30, "sync"
                )
                nodes.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
