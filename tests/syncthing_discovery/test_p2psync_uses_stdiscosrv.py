"""Two p2psync nodes that know only each other's device ID meet through a real
stdiscosrv (Syncthing's discovery server, protocol v3, pinned by ?id=)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import trio
from nodes import Cluster, free_port, wait_for
from stdiscosrv_process import Discosrv, needs_stdiscosrv

from p2psync.config import DiscoveryConfig, load_config, save_config

pytestmark = needs_stdiscosrv


async def test_nodes_announce_to_and_look_up_on_stdiscosrv(tmp_path: Path) -> None:
    disco = Discosrv(tmp_path)
    await trio.to_thread.run_sync(disco.start)
    try:
        config = DiscoveryConfig(mdns=False, global_servers=(disco.url,))
        cluster = Cluster(tmp_path, ["a", "b"], dynamic=True, discovery=config)
        for home in cluster.homes.values():
            # stdiscosrv drops loopback IPs: announce a host name, as configured
            cfg = load_config(home)
            save_config(replace(cfg, listen=(f"tcp://localhost:{free_port()}",)), home)
        async with trio.open_nursery() as nursery:
            await cluster.start_all(nursery)
            a = cluster.nodes["a"]
            await wait_for(lambda: cluster.connected("a", "b"), 60, "a connection via stdiscosrv")
            (cluster.data("a") / "via-stdiscosrv.txt").write_text("found through stdiscosrv")
            cluster.scan("a")
            await wait_for(
                lambda: (cluster.data("b") / "via-stdiscosrv.txt").exists(), 30, "the file on b"
            )
            # what stdiscosrv holds is what a announced: its listen address as configured
            async with httpx.AsyncClient(verify=False) as http:
                answer = await http.get(
                    f"https://127.0.0.1:{disco.port}/v2/", params={"device": str(a.device_id)}
                )
            assert answer.status_code == 200
            assert answer.json()["addresses"] == list(a.connections.announce_addresses)
            assert a.global_discovery.statistics()[disco.url].last_announce_ok  # type: ignore[attr-defined]
            nursery.cancel_scope.cancel()
    except BaseException:
        print(disco.log())
        raise
    finally:
        await trio.to_thread.run_sync(disco.stop)


async def test_a_server_with_another_certificate_is_not_trusted(tmp_path: Path) -> None:
    from p2psync.discovery.cache import AddressCache
    from p2psync.discovery.global_client import GlobalDiscovery
    from p2psync.identity import DeviceID, generate_identity

    disco = Discosrv(tmp_path)
    await trio.to_thread.run_sync(disco.start)
    try:
        me, other = generate_identity(), generate_identity()
        wrong = f"https://127.0.0.1:{disco.port}/v2/?id={other.device_id}"
        right = disco.url
        gd = GlobalDiscovery(
            identity=me,
            servers=[wrong, right],
            get_addresses=lambda: ["tcp://peer.example:22000"],
            lookup_devices=lambda: [],
            cache=AddressCache(),
        )
        await gd.announce(wrong)
        state = gd.statistics()[wrong]
        assert state.last_announce_ok is False and "not the pinned" in state.last_error
        await gd.announce(right)
        assert gd.statistics()[right].last_announce_ok
        # a lookup through the wrong pin is not believed either
        await gd.lookup(wrong, me.device_id, trio.current_time())
        assert gd.cache.addresses(me.device_id.raw, trio.current_time()) == []
        await gd.lookup(right, me.device_id, trio.current_time())
        assert gd.cache.addresses(me.device_id.raw, trio.current_time()) == [
            "tcp://peer.example:22000"
        ]
        assert DeviceID.parse(str(other.device_id)) != disco.device_id
    finally:
        await trio.to_thread.run_sync(disco.stop)


def test_v3_url_options_are_ours_and_not_sent() -> None:
    from p2psync.discovery.syncthing_v3 import parse_v3_server
    from p2psync.identity import DeviceID

    pin = DeviceID(bytes(range(32)))
    server = parse_v3_server(f"https://disco.example.org:8443/v2/?id={pin}&noannounce")
    assert server is not None
    assert server.base == "https://disco.example.org:8443/v2/"
    assert (server.pin, server.announces, server.looks_up) == (pin, False, True)
    lookup_only = parse_v3_server("https://d.example/v2/?nolookup&insecure")
    assert lookup_only is not None and not lookup_only.looks_up and lookup_only.insecure
    assert parse_v3_server("https://p2psync-disco.example.org") is None  # our own /v1 API
    bad_pin = parse_v3_server("https://d.example/v2/?id=garbage")
    assert bad_pin is not None and bad_pin.pin is None and not bad_pin.insecure  # CA checks
