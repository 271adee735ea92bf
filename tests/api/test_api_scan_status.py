"""The initial scan's completion and progress in the API, the event stream and `status`."""

from __future__ import annotations

import io

from api_helpers import api_node, wait_for_async
from rich.console import Console

from p2psync.api.render import status_renderable


async def test_folder_view_and_events_say_when_the_initial_scan_is_complete(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        path = tmp_path / "docs"
        path.mkdir()
        for i in range(3):
            (path / f"f{i}.bin").write_bytes(b"x" * 1000 * (i + 1))
        r = await a.client.post("/api/folders", json={"path": str(path), "id": "docs"})
        assert r.status_code == 201, r.text

        async def complete():
            f = (await a.client.get("/api/folders/docs")).json()
            return f if f["initial_scan_done"] else None

        f = await wait_for_async(complete, what="the initial scan")
        assert f["scan"] is None and f["local"]["files"] == 3
        got = await a.client.get(
            "/api/events", params={"since": 0, "types": "InitialScanCompleted", "timeout": 5}
        )
        (event,) = got.json()["events"]
        assert event["data"]["folder"] == "docs"
        assert event["data"]["files_hashed"] == 3 and event["data"]["bytes_hashed"] == 6000


def _status(folder_extra: dict) -> str:
    counts = {"files": 1, "directories": 0, "symlinks": 0, "deleted": 0, "bytes": 10}
    folder = {
        "id": "f",
        "label": "",
        "state": "scanning",
        "reason": "",
        "global": counts,
        "need": {**counts, "files": 0, "bytes": 0},
        "need_items": 0,
        "completion": 100.0,
        "item_errors": [],
        "devices": [],
        **folder_extra,
    }
    data = {
        "system": {
            "name": "n",
            "device_id": "AAAAAAA-B",
            "uptime": 1,
            "listen_addresses": [],
            "api_address": "127.0.0.1:2",
        },
        "folders": [folder],
        "devices": [],
    }
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(status_renderable(data))
    return out.getvalue()


def test_status_shows_initial_scan_progress() -> None:
    scan = {
        "initial": True,
        "files_hashed": 120,
        "bytes_hashed": 3 << 30,
        "seconds": 2.0,
        "bytes_per_s": 3 << 29,
    }
    text = _status({"initial_scan_done": False, "scan": scan})
    assert "f: initial scan: 120 files, 3.0 GiB hashed in 2.0 s (1.5 GiB/s)" in text
    assert "initial scan" not in _status({"initial_scan_done": True, "scan": None})
