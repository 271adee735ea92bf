"""Every number, time and JSON body the control API reads from a request goes through
the parsing helpers of api/parsing.py: whatever a client sends there is a 400 with a
message, never a 500 (deep nesting, out-of-range times, infinities, NaN)."""

from __future__ import annotations

import pytest
from api_helpers import api_node


async def test_a_deeply_nested_json_body_is_400(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        for body in (b"[" * 100_000, b'{"a":' * 100_000):
            r = await a.client.post("/api/folders", content=body)
            assert r.status_code == 400, r.text
            assert "nested too deeply" in r.json()["error"]


@pytest.mark.parametrize(
    "at",
    [1e20, -1e20, "1e20", 10**30, "-1e20", 1e308, "inf", "nan", "9" * 5000, "99999-01-01"],
)
async def test_an_out_of_range_restore_time_is_400(tmp_path, at: object) -> None:
    async with api_node(tmp_path) as a:
        folder = a.data / "docs"
        folder.mkdir()
        r = await a.client.post("/api/folders", json={"path": str(folder), "id": "docs"})
        assert r.is_success, r.text
        r = await a.client.post(
            "/api/folders/docs/versions/restore", json={"path": "a.txt", "at": at}
        )
        assert r.status_code == 400, r.text
        assert "'at'" in r.json()["error"]


async def test_json_infinities_in_a_restore_time_are_400(tmp_path) -> None:
    async with api_node(tmp_path) as a:
        folder = a.data / "docs"
        folder.mkdir()
        await a.client.post("/api/folders", json={"path": str(folder), "id": "docs"})
        for raw in (b"1e400", b"-1e400", b"NaN", b"Infinity"):
            body = b'{"path": "a.txt", "at": ' + raw + b"}"
            r = await a.client.post("/api/folders/docs/versions/restore", content=body)
            assert r.status_code == 400, (raw, r.text)
            assert "'at'" in r.json()["error"]
