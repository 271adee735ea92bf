"""Checklist item 7 at the control API of a running node: no key, a wrong key, a foreign
Host header (DNS rebinding), and path traversal in folder and version-restore paths.
Each is refused with a 4xx and touches nothing on disk."""

from __future__ import annotations

import httpx
import trio
import trio.lowlevel
from nodes import FOLDER, running_cluster, wait_for

from p2psync.api.auth import read_api_key


def user_names(root) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".p2p"))


async def test_control_api_refuses_hostile_calls(tmp_path, outcomes) -> None:
    outside = tmp_path / "outside.txt"
    async with running_cluster(tmp_path, ["a"]) as c:
        node = c.nodes["a"]
        await wait_for(lambda: node.api_address, what="API address")
        base = (
            node.api_address
            if str(node.api_address).startswith("http")
            else f"http://{node.api_address}"
        )
        key = read_api_key(c.homes["a"])
        (c.data("a") / "doc.txt").write_text("keep me")
        before = user_names(c.data("a"))
        calls = {
            "no API key": ("GET", "/api/folders", {}, None),
            "wrong API key": ("GET", "/api/folders", {"X-API-Key": "wrong"}, None),
            "Host: evil.example (rebinding)": (
                "GET",
                "/api/folders",
                {"X-API-Key": key, "Host": "evil.example"},
                None,
            ),
            "restore path ../outside.txt": (
                "POST",
                f"/api/folders/{FOLDER}/versions/restore",
                {"X-API-Key": key},
                {"path": "../outside.txt"},
            ),
            "restore absolute path": (
                "POST",
                f"/api/folders/{FOLDER}/versions/restore",
                {"X-API-Key": key},
                {"path": str(outside)},
            ),
            "versions of ../../etc": (
                "GET",
                f"/api/folders/{FOLDER}/versions?path=../../etc",
                {"X-API-Key": key},
                None,
            ),
            "folder id with traversal": (
                "GET",
                "/api/folders/..%2F..%2Fetc",
                {"X-API-Key": key},
                None,
            ),
            "folder add at a path with NUL": (
                "POST",
                "/api/folders",
                {"X-API-Key": key},
                {"id": "x", "path": "/tmp/a\u0000b"},
            ),
            "folder add with a 100,000-deep JSON body": (
                "POST",
                "/api/folders",
                {"X-API-Key": key},
                b"[" * 100_000,
            ),
            "restore at=1e20": (
                "POST",
                f"/api/folders/{FOLDER}/versions/restore",
                {"X-API-Key": key},
                {"path": "doc.txt", "at": 1e20},
            ),
        }
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for what, (method, url, headers, body) in calls.items():
                raw = body if isinstance(body, bytes) else None
                data = None if raw is not None else body
                r = await client.request(method, url, headers=headers, json=data, content=raw)
                assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text[:200]}"
                assert r.headers.get("content-type", "").startswith("application/json"), what
                outcomes.record("api", what, f"refused ({r.status_code})")
            ok = await client.get("/api/folders", headers={"X-API-Key": key})
            assert ok.status_code == 200
        assert not outside.exists()
        assert user_names(c.data("a")) == before
        assert node.config.folder("x") is None
        await trio.lowlevel.checkpoint()
