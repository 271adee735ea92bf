"""Selective sync through the control API (GET/PUT /api/folders/{id}/selection, POST
.../select and .../unselect) on a real in-process node: saved, applied live, validated;
a file no other device has stays on disk when left out."""

from __future__ import annotations

from api_helpers import api_node, wait_for_async

from p2psync.config import load_config


async def test_selection_endpoints(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        c = a.client
        path = tmp_path / "shared"
        (path / "docs").mkdir(parents=True)
        (path / "docs" / "d.txt").write_bytes(b"doc")
        (path / "only-here.txt").write_bytes(b"x" * 100)
        assert (
            await c.post("/api/folders", json={"path": str(path), "id": "s"})
        ).status_code == 201

        async def scanned():
            f = (await c.get("/api/folders/s")).json()
            return f if f["local"]["files"] == 2 and f["state"] == "idle" else None

        await wait_for_async(scanned, what="the scan")
        got = (await c.get("/api/folders/s/selection")).json()
        assert got["everything"] and got["selected"] == [] and got["left_out_items"] == 0

        r = await c.post("/api/folders/s/selection/select", json={"paths": ["docs/", "photos"]})
        assert r.status_code == 200, r.text
        assert r.json()["selected"] == ["docs", "photos"]
        assert load_config(a.node.home).folder("s").selected == ("docs", "photos")

        async def kept():
            s = (await c.get("/api/folders/s/selection")).json()
            return s if s["kept_count"] else None

        s = await wait_for_async(kept, what="the selection applied")
        # never on another device: left out, but kept (and reported), never removed
        assert s["kept"] == [
            {"name": "only-here.txt", "reason": "no other device has this version yet"}
        ]
        assert (path / "only-here.txt").read_bytes() == b"x" * 100
        f = (await c.get("/api/folders/s")).json()
        assert (
            f["selection"]["selected"] == ["docs", "photos"] and f["selection"]["kept_count"] == 1
        )

        r = await c.post("/api/folders/s/selection/unselect", json={"paths": ["photos"]})
        assert r.json()["selected"] == ["docs"]
        for bad in (["docs"], ["music"]):  # the last one; one not selected
            r = await c.post("/api/folders/s/selection/unselect", json={"paths": bad})
            assert r.status_code == 400, r.text
        for body in (
            {"selected": ["../x"]},
            {"selected": [".p2pversions"]},
            {"selected": "docs"},
            {},
        ):
            assert (await c.put("/api/folders/s/selection", json=body)).status_code == 400
        assert (await c.get("/api/folders/nope/selection")).status_code == 404
        r = await c.put("/api/folders/s/selection", json={"selected": []})
        assert r.json()["everything"] is True
        assert load_config(a.node.home).folder("s").selected == ()
