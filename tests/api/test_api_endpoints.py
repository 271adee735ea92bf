"""Each endpoint of the control API against a real in-process node (real files, SQLite)."""

from __future__ import annotations

import os
import time

import trio
from api_helpers import api_node, wait_for_async

from p2psync.api.handlers import build_app
from p2psync.api.openapi import documented_routes
from p2psync.config import load_config, save_config
from p2psync.identity import DeviceID, generate_identity
from p2psync.pending import PendingDevice, PendingFolder
from p2psync.web import mount


async def test_system_and_openapi(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        s = (await a.client.get("/api/system")).json()
        assert s["device_id"] == str(a.node.device_id)
        assert s["name"] == "alpha" and s["version"]
        assert s["listen_addresses"] == a.node.connections.listen_addresses
        assert s["home"] == str(a.node.home) and s["uptime"] >= 0 and s["mdns"] is False
        doc = (await a.client.get("/api/openapi.json")).json()
        assert doc["openapi"].startswith("3.") and "/api/folders/{id}/scan" in doc["paths"]
        app = build_app(a.node, key="k", web=mount)
        served = {
            (m, r.path)
            for r in app.routes
            for m in (r.methods or ())
            if m != "HEAD" and r.path.startswith("/api/")  # the rest is the web interface
        }
        assert served == documented_routes()


async def test_folder_lifecycle(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        c = a.client
        path = tmp_path / "docs"
        r = await c.post("/api/folders", json={"path": str(path), "id": "docs", "label": "My docs"})
        assert r.status_code == 201, r.text
        assert path.is_dir() and load_config(a.node.home).folder("docs") is not None
        assert "docs" in a.node.model.folders  # applied without a restart
        dup = await c.post("/api/folders", json={"path": str(path), "id": "other"})
        assert dup.status_code == 400 and "already shared" in dup.json()["error"]
        assert (await c.post("/api/folders", json={"path": "relative/x"})).status_code == 400
        assert (
            await c.post("/api/folders", json={"path": str(tmp_path / "y"), "type": "bogus"})
        ).status_code == 400
        assert (
            await c.post("/api/folders", json={"path": str(tmp_path / "z"), "id": "../x"})
        ).status_code == 400
        assert (await c.post("/api/folders", content=b"{not json")).status_code == 400
        (path / "a.txt").write_bytes(b"x" * 1000)
        os.makedirs(path / "sub")
        assert (
            await c.post("/api/folders/docs/scan", json={"paths": ["a.txt", "sub"]})
        ).status_code == 202
        assert (
            await c.post("/api/folders/docs/scan", json={"paths": ["../etc"]})
        ).status_code == 400

        async def scanned():
            f = (await c.get("/api/folders/docs")).json()
            return f if f["local"]["files"] == 1 and f["state"] == "idle" else None

        f = await wait_for_async(scanned, what="the scan")
        assert (
            f["label"] == "My docs"
            and f["local"]["bytes"] == 1000
            and f["local"]["directories"] == 1
        )
        assert f["global"]["bytes"] == 1000 and f["need_items"] == 0 and f["completion"] == 100.0
        assert f["in_sync"] and f["item_errors"] == [] and f["last_scan"] > time.time() - 60
        listed = (await c.get("/api/folders")).json()
        assert [x["id"] for x in listed] == ["docs"]
        # pause / resume are config edits applied live
        assert (await c.post("/api/folders/docs/pause")).json()["paused"] is True
        assert load_config(a.node.home).folder("docs").paused
        await wait_for_async(lambda: _state(c, "docs", "paused"), what="paused state")
        await c.post("/api/folders/docs/resume")
        assert not load_config(a.node.home).folder("docs").paused
        await wait_for_async(lambda: _state(c, "docs", "idle"), what="idle after resume")
        # actions that do not fit the folder type
        r = await c.post("/api/folders/docs/override")
        assert r.status_code == 409 and "send-only" in r.json()["error"]
        assert (await c.post("/api/folders/docs/revert")).status_code == 409
        assert (await c.post("/api/folders/docs/confirm-deletes")).status_code == 200
        # unknown folders
        for method, url in (
            ("GET", "/api/folders/nope"),
            ("POST", "/api/folders/nope/scan"),
            ("POST", "/api/folders/nope/pause"),
            ("DELETE", "/api/folders/nope"),
            ("GET", "/api/folders/nope/conflicts"),
        ):
            r = await c.request(method, url)
            assert r.status_code == 404 and "does not exist" in r.json()["error"], url
        assert (await c.delete("/api/folders/docs")).status_code == 200
        assert (
            load_config(a.node.home).folder("docs") is None and "docs" not in a.node.model.folders
        )
        assert (path / "a.txt").exists()


async def _state(c, folder_id: str, state: str) -> bool:
    return (await c.get(f"/api/folders/{folder_id}")).json()["state"] == state


async def test_send_only_override_and_receive_only_revert(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        c = a.client
        await c.post(
            "/api/folders", json={"path": str(tmp_path / "s"), "id": "s", "type": "sendonly"}
        )
        await c.post(
            "/api/folders", json={"path": str(tmp_path / "r"), "id": "r", "type": "receiveonly"}
        )
        assert (await c.post("/api/folders/s/override")).json()["ok"] is True
        (tmp_path / "r" / "local.txt").write_text("mine")
        await c.post("/api/folders/r/scan")

        async def flagged():
            return (await c.get("/api/folders/r")).json()["local"]["files"] == 1

        await wait_for_async(flagged, what="receive-only scan")
        assert (await c.post("/api/folders/r/revert")).json()["reverted"] == 1


async def test_conflicts_and_versions(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        c = a.client
        root = tmp_path / "v"
        conflict = "notes.sync-conflict-20240101-101010-ABCDEFG.txt"
        (root / ".p2pversions").mkdir(parents=True)
        (root / conflict).write_text("theirs")
        (root / "notes.txt").write_text("current")
        (root / ".p2pversions" / "notes~20240101-000000.txt").write_text("old")
        await c.post("/api/folders", json={"path": str(root), "id": "v"})  # scans at once

        async def found():
            return (await c.get("/api/folders/v/conflicts")).json()["conflicts"]

        items = await wait_for_async(found, what="the conflict copy in the index")
        assert [i["name"] for i in items] == [conflict] and items[0]["size"] == 6
        vs = (await c.get("/api/folders/v/versions", params={"path": "notes.txt"})).json()[
            "versions"
        ]
        assert [(v["name"], v["size"]) for v in vs] == [("notes.txt", 3)]
        assert vs[0]["time"].startswith("2024-01-01T00:00:00")
        assert len((await c.get("/api/folders/v/versions")).json()["versions"]) == 1
        bad = await c.post(
            "/api/folders/v/versions/restore",
            json={"path": "notes.txt", "at": "2023-01-01T00:00:00+00:00"},
        )
        assert bad.status_code == 404 and "no version" in bad.json()["error"]
        assert (
            await c.post("/api/folders/v/versions/restore", json={"path": "missing.txt"})
        ).status_code == 404
        assert (
            await c.post(
                "/api/folders/v/versions/restore", json={"path": "notes.txt", "at": "soon"}
            )
        ).status_code == 400
        r = await c.post(
            "/api/folders/v/versions/restore", json={"path": "notes.txt", "at": 1_704_067_300}
        )
        assert r.status_code == 200, r.text
        assert (root / "notes.txt").read_text() == "old"
        # the replaced current file was archived, not lost
        names = [
            v["size"]
            for v in (await c.get("/api/folders/v/versions", params={"path": "notes.txt"})).json()[
                "versions"
            ]
        ]
        assert sorted(names) == [3, 7]


async def test_devices_and_pending(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        c = a.client
        other = str(generate_identity().device_id)
        r = await c.post(
            "/api/devices",
            json={"id": other.lower(), "name": "beta", "addresses": ["tcp://127.0.0.1:1"]},
        )
        assert r.status_code == 201 and r.json()["id"] == other
        assert (await c.post("/api/devices", json={"id": other, "name": "beta2"})).json()[
            "updated"
        ] is True
        assert load_config(a.node.home).device(generate_identity().device_id) is None
        assert (await c.post("/api/devices", json={"id": str(a.node.device_id)})).status_code == 400
        r = await c.post("/api/devices", json={"id": "NOT-AN-ID"})
        assert r.status_code == 400 and r.json()["kind"] == "DeviceIDError"
        r = await c.post("/api/devices", json={"id": other, "addresses": ["udp://x:1"]})
        assert r.status_code == 400 and r.json()["kind"] == "UsageError"  # a bad argument
        devs = (await c.get("/api/devices")).json()
        assert len(devs) == 1
        d = devs[0]
        assert d["id"] == other and d["name"] == "beta2" and d["addresses"] == ["tcp://127.0.0.1:1"]
        assert d["connected"] is False and d["in_bps"] == 0.0 and d["paused"] is False
        await c.post(f"/api/devices/{other}/pause")
        assert (await c.get("/api/devices")).json()[0]["paused"] is True
        await c.post(f"/api/devices/{other}/resume")
        assert load_config(a.node.home).devices[0].paused is False
        # sharing
        await c.post("/api/folders", json={"path": str(tmp_path / "f"), "id": "f"})
        assert (await c.post("/api/folders/f/share", json={"device": other})).json()[
            "already_shared"
        ] is False
        assert (await c.post("/api/folders/f/share", json={"device": other})).json()[
            "already_shared"
        ] is True
        unknown = str(generate_identity().device_id)
        assert (await c.post("/api/folders/f/share", json={"device": unknown})).status_code == 404
        # a malformed ID is refused where the request is read: body, list or path
        for r in (
            await c.post("/api/folders/f/share", json={"device": "NOT-AN-ID"}),
            await c.post("/api/folders", json={"path": str(tmp_path / "g"), "share": ["x"]}),
            await c.post("/api/devices/NOT-AN-ID/pause"),
            await c.delete("/api/devices/NOT-AN-ID"),
        ):
            assert r.status_code == 400 and r.json()["kind"] == "DeviceIDError", r.text
        f = (await c.get("/api/folders/f")).json()
        assert [x["id"] for x in f["devices"]] == [other] and f["devices"][0]["in_sync"] is False
        assert (await c.delete(f"/api/devices/{other}")).status_code == 200
        assert load_config(a.node.home).folder("f").devices == ()
        assert (await c.delete(f"/api/devices/{other}")).status_code == 404
        # pending devices and folders (as the daemon records them)
        a.node.pending.add_device(PendingDevice(unknown, "gamma", "tcp://127.0.0.1:2", 1.0))
        a.node.pending.add_folder(PendingFolder("offered", "Offered", unknown, 2.0))
        assert [p["device_id"] for p in (await c.get("/api/pending/devices")).json()] == [unknown]
        assert (await c.post(f"/api/pending/devices/{other}/accept")).status_code == 404
        assert (await c.post(f"/api/pending/devices/{unknown}/accept")).status_code == 200
        assert load_config(a.node.home).device(generate_identity().device_id) is None
        assert [d["name"] for d in (await c.get("/api/devices")).json()] == ["gamma"]
        assert (await c.get("/api/pending/devices")).json() == []
        assert (await c.get("/api/pending/folders")).json()[0]["folder_id"] == "offered"
        r = await c.post(
            "/api/pending/folders/offered/accept", json={"path": str(tmp_path / "acc")}
        )
        assert r.status_code == 200 and r.json()["devices"] == [unknown]
        assert (tmp_path / "acc").is_dir() and "offered" in a.node.model.folders
        assert (await c.post("/api/pending/folders/offered/accept", json={})).status_code == 404
        a.node.pending.add_folder(PendingFolder("spam", "", unknown, 3.0))
        a.node.pending.add_device(PendingDevice(other, "x", "tcp://127.0.0.1:3", 1.0))
        assert (await c.post("/api/pending/folders/spam/reject")).status_code == 200
        assert (await c.post(f"/api/pending/devices/{other}/reject")).status_code == 200
        assert (await c.get("/api/pending/folders")).json() == []
        assert (await c.get("/api/pending/devices")).json() == []
        assert (await c.get("/api/discovered")).json() == {"enabled": False, "devices": []}


async def test_events_long_poll_and_filters(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        c = a.client
        first = (await c.get("/api/events", params={"since": 0, "timeout": 0})).json()
        last = first["last_id"]
        got = {}

        async def poll():
            got["r"] = (
                await c.get(
                    "/api/events", params={"since": last, "timeout": 20, "types": "TestEvent"}
                )
            ).json()

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(
                    0.2
                )  # let the request park; the assertion below does not rely on it
                a.node.events.emit("Other", x=1)
                a.node.events.emit("TestEvent", name="a\x1bb", n=2)
        events = got["r"]["events"]
        assert [e["type"] for e in events] == ["TestEvent"] and events[0]["data"]["n"] == 2
        assert events[0]["id"] > last
        # a bounded wait: no events, an empty answer
        r = (await c.get("/api/events", params={"since": 10**9, "timeout": 0.05})).json()
        assert r["events"] == []
        for bad in ({"since": "x"}, {"timeout": "nan"}, {"timeout": "soon"}):
            assert (await c.get("/api/events", params=bad)).status_code == 400


async def test_config_reload_applies_edits_from_disk(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        cfg = load_config(a.node.home)
        from p2psync.config import DeviceConfig

        other = str(generate_identity().device_id)
        save_config(
            cfg.with_device(DeviceConfig(id=DeviceID.parse(other), name="edited")), a.node.home
        )
        assert (await a.client.post("/api/config/reload")).status_code == 200
        assert [d["name"] for d in (await a.client.get("/api/devices")).json()] == ["edited"]
        (a.node.home / "config.toml").write_text("name = 3\n")
        r = await a.client.post("/api/config/reload")
        assert r.status_code == 400 and "name" in r.json()["error"]
