"""Two in-process nodes configured only through their APIs: connect, share, sync."""

from __future__ import annotations

from contextlib import AsyncExitStack

from api_helpers import api_node, wait_for_async


async def test_two_nodes_share_a_folder_through_the_api(tmp_path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(api_node(tmp_path, "alpha"))
        b = await stack.enter_async_context(api_node(tmp_path, "beta"))
        ida, idb = str(a.node.device_id), str(b.node.device_id)
        await a.client.post(
            "/api/devices",
            json={"id": idb, "name": "beta", "addresses": b.node.connections.listen_addresses},
        )
        await b.client.post(
            "/api/devices",
            json={"id": ida, "name": "alpha", "addresses": a.node.connections.listen_addresses},
        )

        async def connected():
            devs = (await a.client.get("/api/devices")).json()
            return devs[0] if devs[0]["connected"] else None

        dev = await wait_for_async(connected, what="connection")
        assert dev["address"].startswith("tcp://127.0.0.1:") and dev["connected_for"] >= 0
        (a.data / "big.bin").write_bytes(b"\x01" * 300_000)
        r = await a.client.post(
            "/api/folders", json={"path": str(a.data), "id": "shared", "devices": [idb]}
        )
        assert r.status_code == 201

        async def offered():
            return any(
                p["folder_id"] == "shared"
                for p in (await b.client.get("/api/pending/folders")).json()
            )

        await wait_for_async(offered, what="the folder offer on beta")
        r = await b.client.post("/api/pending/folders/shared/accept", json={"path": str(b.data)})
        assert r.status_code == 200 and r.json()["devices"] == [ida]

        async def synced():
            fa = (await a.client.get("/api/folders/shared")).json()
            fb = (await b.client.get("/api/folders/shared")).json()
            done = (
                fb["local"]["bytes"] == 300_000
                and fb["in_sync"]
                and fa["devices"][0]["in_sync"]
                and fb["devices"][0]["in_sync"]
                and fb["state"] == "idle"
            )
            return (fa, fb) if done else None

        fa, fb = await wait_for_async(synced, within=20, what="sync")
        assert (b.data / "big.bin").read_bytes() == b"\x01" * 300_000
        assert (
            fb["global"]["bytes"] == fa["global"]["bytes"] == 300_000 and fb["completion"] == 100.0
        )
        assert fa["devices"][0]["connected"] and fa["devices"][0]["name"] == "beta"
        dev = (await a.client.get("/api/devices")).json()[0]
        assert dev["bytes_out"] > 300_000 and dev["out_bps"] > 0 and dev["folders"] == ["shared"]
        types = {
            e["type"]
            for e in (await b.client.get("/api/events", params={"timeout": 0})).json()["events"]
        }
        assert {"DeviceConnected", "FolderOffered", "RemoteIndexUpdated", "ItemFinished"} <= types
        # pausing the device disconnects it, resuming reconnects
        await a.client.post(f"/api/devices/{idb}/pause")

        async def paused():
            d = (await a.client.get("/api/devices")).json()[0]
            return d["paused"] and not d["connected"]

        await wait_for_async(paused, what="disconnect on pause")
        await a.client.post(f"/api/devices/{idb}/resume")
        await wait_for_async(connected, what="reconnect on resume")
