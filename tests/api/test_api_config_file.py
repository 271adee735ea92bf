"""API writes never lose the user's edits to config.toml (issue 18.5)."""

from __future__ import annotations

from api_helpers import api_node

from p2psync.config import load_config
from p2psync.identity import generate_identity


async def test_a_write_is_refused_while_the_file_is_invalid(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        path = a.node.home / "config.toml"
        broken = path.read_text().replace("mdns = false", 'mdns = "no"')
        assert 'mdns = "no"' in broken
        path.write_text(broken)
        other = str(generate_identity().device_id)
        r = await a.client.post("/api/devices", json={"id": other})
        assert r.status_code == 400 and r.json()["kind"] == "ConfigError"
        assert "not saved" in r.json()["error"] and "discovery.mdns" in r.json()["error"]
        assert path.read_text() == broken
        got = (await a.client.get("/api/config")).json()
        assert got["config"]["name"] == "alpha" and "discovery.mdns" in got["error"]


async def test_a_write_keeps_a_hand_edit_not_yet_applied(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        path = a.node.home / "config.toml"
        path.write_text(path.read_text().replace('name = "alpha"', 'name = "edited"'))
        other = str(generate_identity().device_id)
        r = await a.client.post("/api/devices", json={"id": other})
        assert r.status_code == 201, r.text
        cfg = load_config(a.node.home)
        assert cfg.name == "edited" and [str(d.id) for d in cfg.devices] == [other]
        assert a.node.config.name == "edited"
