"""A stock Syncthing announces to and looks up from our discovery server (v3 at /v2/,
pinned by ?id=), and finds a p2psync node that announced through /v1 to the same store."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import trio
from dsrv_helpers import write_tls_files
from nodes import make_home, wait_for
from stock_syncthing import needs_syncthing, stock_syncthing

from discovery_server.server import serve_discovery
from discovery_server.service import ServerSettings
from discovery_server.stores import MemoryStore
from p2psync.config import DeviceConfig, DiscoveryConfig, FolderConfig, load_config, save_config
from p2psync.identity import DeviceID
from p2psync.wiring import serve_node

pytestmark = needs_syncthing


async def test_stock_syncthing_and_p2psync_meet_through_our_discovery_server(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    cert, key = write_tls_files(tmp_path)
    settings = ServerSettings(retry_after=1, reannounce_after=60)
    async with trio.open_nursery() as nursery:
        # One store, two front doors: HTTPS (Syncthing: client certificates) and plain HTTP
        # (the p2psync node, whose /v1 announcements are signed).
        https_urls, https = await nursery.start(
            partial(serve_discovery, settings, store, listen="127.0.0.1:0",
                    certfile=str(cert), keyfile=str(key))
        )  # fmt: skip
        http_urls, _ = await nursery.start(
            partial(serve_discovery, settings, store, listen="127.0.0.1:0")
        )
        st_server = f"{https_urls[0]}/v2/?id={https.certificate_id}"
        home = make_home(
            tmp_path, "p2p", DiscoveryConfig(mdns=False, global_servers=(http_urls[0],))
        )
        data = tmp_path / "p2p" / "data"
        theirs = tmp_path / "st-data"
        theirs.mkdir()
        with stock_syncthing(tmp_path / "st-home", name="stock") as st:
            st.client.patch(
                "/rest/config/options",
                json={"globalAnnounceEnabled": True, "globalAnnounceServers": [st_server]},
            ).raise_for_status()
            cfg = load_config(home)
            cfg = cfg.with_device(
                DeviceConfig(id=DeviceID.parse(st.device_id), name="stock")
            )  # dynamic
            node = await nursery.start(partial(serve_node, home))
            me = str(node.device_id)
            cfg = cfg.with_folder(
                FolderConfig(id="found", path=str(data), devices=(DeviceID.parse(st.device_id),))
            )
            save_config(cfg, home)
            await node.apply_config(cfg)
            await trio.to_thread.run_sync(st.add_device, me, "p2p", "dynamic")
            await trio.to_thread.run_sync(st.add_folder, "found", theirs, [me])

            # Syncthing's v3 announcement landed in the store, under its certificate's ID
            st_id = DeviceID.parse(st.device_id)
            try:
                with trio.fail_after(60):  # polls: the store has no change event
                    while await store.get(st_id, time.time()) is None:  # noqa: ASYNC110
                        await trio.sleep(0.1)
            except trio.TooSlowError:
                print(st.log())
                raise
            await wait_for(lambda: node.connections.is_connected(st_id), 90, "a connection")
            (data / "found.txt").write_text("found through the discovery server\n")
            node.model.folders["found"].request_scan(None)
            await wait_for(lambda: (theirs / "found.txt").exists(), 60, "the file on Syncthing")
            # and Syncthing looked the p2psync node up on /v2/
            cache = await trio.to_thread.run_sync(st.get, "/rest/system/discovery")
            assert any(a.startswith("tcp://127.0.0.1:") for a in cache[me]["addresses"]), cache
        nursery.cancel_scope.cancel()
