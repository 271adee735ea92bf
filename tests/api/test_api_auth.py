"""The API's guards: key auth (401), DNS-rebinding Host check (403), the key file."""

from __future__ import annotations

import stat

import httpx
from api_helpers import api_node

from p2psync.api.auth import allowed_hosts, ensure_api_key, key_matches, presented_key, read_api_key


async def test_requests_without_or_with_a_wrong_key_get_401(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        async with httpx.AsyncClient(base_url=f"http://{a.address}") as bare:
            for headers in (
                {},
                {"X-API-Key": "wrong"},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {a.key}"},
                {"X-API-Key": a.key[:-1]},
            ):
                r = await bare.get("/api/system", headers=headers)
                assert r.status_code == 401, headers
                assert r.json()["error"].startswith("missing or wrong API key")
            # unknown routes and mutations are guarded too
            assert (await bare.get("/api/nope")).status_code == 401
            assert (await bare.post("/api/devices", json={"id": "x"})).status_code == 401
            ok = await bare.get("/api/system", headers={"Authorization": f"Bearer {a.key}"})
            assert ok.status_code == 200 and ok.json()["device_id"] == str(a.node.device_id)


async def test_foreign_host_header_gets_403_even_with_the_key(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        port = a.address.rsplit(":", 1)[1]
        for host in (
            "evil.example",
            f"evil.example:{port}",
            "127.0.0.2",
            f"localhost.evil:{port}",
            f"127.0.0.1:{int(port) + 1}",
        ):
            r = await a.client.get("/api/system", headers={"Host": host})
            assert r.status_code == 403, host
            assert "Host" in r.json()["error"]
        for host in (a.address, f"localhost:{port}", "localhost", f"[::1]:{port}", "LOCALHOST"):
            r = await a.client.get("/api/system", headers={"Host": host})
            assert r.status_code == 200, host


async def test_api_key_file_is_private_and_stable(tmp_path) -> None:
    home = tmp_path / "h"
    key = ensure_api_key(home)
    mode = (home / "api.key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert len(key) >= 32
    assert ensure_api_key(home) == key == read_api_key(home)


def test_key_comparison_and_header_parsing() -> None:
    assert key_matches("abc", "abc") and not key_matches("abd", "abc")
    assert not key_matches(None, "abc") and not key_matches("", "abc")
    assert not key_matches("é", "abc")  # non-ASCII never crashes
    assert presented_key([(b"X-Api-Key", b" k1 ")]) == "k1"
    assert presented_key([(b"authorization", b"bearer k2")]) == "k2"
    assert presented_key([(b"authorization", b"Basic k3")]) is None
    hosts = allowed_hosts("127.0.0.1:8385")
    assert {"127.0.0.1:8385", "localhost:8385", "[::1]:8385", "localhost"} <= hosts
    assert "127.0.0.1:8386" not in hosts and "example.com" not in hosts
