"""Daemons that know only each other's device ID find each other and sync:
through the discovery server, and through mDNS bound to loopback."""

import trio
from nodes import running_cluster, wait_for

from discovery_server.server import serve_discovery
from discovery_server.service import ServerSettings
from discovery_server.stores import open_store
from p2psync.config import DiscoveryConfig


async def test_find_each_other_through_discovery_server(tmp_path) -> None:
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
            async with running_cluster(tmp_path, ["a", "b"], dynamic=True, discovery=disco) as c:
                # the daemons have no addresses for each other: only the server can tell them
                assert [str(a) for a in c.nodes["a"].config.devices[0].addresses] == ["dynamic"]
                await wait_for(
                    lambda: c.connected("a", "b"),
                    timeout=30,
                    what="connection via discovery server",
                )
                (c.data("a") / "found.txt").write_text("via discovery server")
                c.scan("a")
                await wait_for(lambda: (c.data("b") / "found.txt").exists(), what="sync")
            nursery.cancel_scope.cancel()


async def test_find_each_other_through_mdns_on_loopback(tmp_path) -> None:
    disco = DiscoveryConfig(mdns=True, mdns_interfaces=("127.0.0.1",))
    async with running_cluster(tmp_path, ["a", "b"], dynamic=True, discovery=disco) as c:
        await wait_for(lambda: c.connected("a", "b"), timeout=30, what="connection via mDNS")
        (c.data("b") / "lan.txt").write_text("via mdns")
        c.scan("b")
        await wait_for(lambda: (c.data("a") / "lan.txt").exists(), what="sync")
