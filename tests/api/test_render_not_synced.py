"""`p2psync status` shows a folder's "not synced here" items with their reason."""

from __future__ import annotations

import io

from rich.console import Console

from p2psync.api.render import status_renderable


def test_status_lists_items_not_synced_here() -> None:
    counts = {"files": 1, "directories": 0, "symlinks": 0, "deleted": 0, "bytes": 10}
    folder = {
        "id": "f",
        "label": "",
        "state": "idle",
        "reason": "",
        "global": counts,
        "need": {**counts, "files": 0, "bytes": 0},
        "need_items": 0,
        "completion": 100.0,
        "item_errors": [],
        "not_synced": [{"name": ".P2PIGNORE", "error": "one of p2psync's own names"}],
        "devices": [],
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
    assert "f: .P2PIGNORE: not synced here: one of p2psync's own names" in out.getvalue()
