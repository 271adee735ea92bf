"""The HTTP API against a real server on 127.0.0.1, driven by httpx."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from dsrv_helpers import FakeClock, RunningServer, running_server, write_tls_files

from p2psync.discovery.announcement import sign_announcement
from p2psync.identity import Identity


def _body(
    server: RunningServer, identity: Identity, addresses: list[str], **kw: Any
) -> dict[str, Any]:
    timestamp = kw.pop("timestamp", int(server.clock.now))
    return sign_announcement(identity, addresses, timestamp, kw.pop("url", server.url))


async def _lookup(server: RunningServer, identity: Identity) -> httpx.Response:
    return await server.http.get("/v1/lookup", params={"device": str(identity.device_id)})


async def test_announce_then_lookup(identity: Identity) -> None:
    async with running_server(reannounce_after=1234) as server:
        response = await server.http.post(
            "/v1/announce", json=_body(server, identity, ["tcp://192.0.2.1:22000"])
        )
        assert response.status_code == 204
        assert response.headers["Reannounce-After"] == "1234"
        found = await _lookup(server, identity)
        assert found.status_code == 200
        assert found.json() == {
            "addresses": ["tcp://192.0.2.1:22000"],
            "seen": "2023-11-14T22:13:20Z",
        }


async def test_lookup_of_unknown_and_malformed_ids(identity: Identity) -> None:
    async with running_server(retry_after=77) as server:
        missing = await _lookup(server, identity)
        assert missing.status_code == 404
        assert missing.headers["Retry-After"] == "77"
        assert missing.json()["error"] == f"device {identity.device_id} is not known"
        lenient = str(identity.device_id).lower().replace("-", "")
        sloppy = await server.http.get("/v1/lookup", params={"device": lenient})
        assert sloppy.json()["error"] == f"device {identity.device_id} is not known"
        for query in ({"device": "ABC"}, {}):
            bad = await server.http.get("/v1/lookup", params=query)
            assert bad.status_code == 400
            assert bad.json()["error"]


async def test_unspecified_host_becomes_the_source_address(identity: Identity) -> None:
    async with running_server() as server:
        body = _body(
            server, identity, ["tcp://0.0.0.0:22000", "tcp://[::]:22001", "tcp://192.0.2.1:3"]
        )
        assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        addresses = (await _lookup(server, identity)).json()["addresses"]
        assert addresses == ["tcp://127.0.0.1:22000", "tcp://127.0.0.1:22001", "tcp://192.0.2.1:3"]


def _forge(server: RunningServer, identity: Identity, other: Identity) -> dict[str, Any]:
    body = _body(server, identity, ["tcp://192.0.2.1:1"])
    body["signature"] = _body(server, other, ["tcp://192.0.2.1:1"])["signature"]
    return body


def _other_cert(server: RunningServer, identity: Identity, other: Identity) -> dict[str, Any]:
    body = _body(server, identity, ["tcp://192.0.2.1:1"])
    body["certificate"] = other.cert_pem.decode()
    return body


REJECTIONS = {
    "forged signature": (_forge, 403, "signature"),
    "certificate of another key": (_other_cert, 403, "certificate"),
    "stale timestamp": (
        lambda s, i, o: _body(s, i, ["tcp://192.0.2.1:1"], timestamp=int(s.clock.now) - 600),
        400,
        "clock",
    ),
    "future timestamp": (
        lambda s, i, o: _body(s, i, ["tcp://192.0.2.1:1"], timestamp=int(s.clock.now) + 600),
        400,
        "clock",
    ),
    "signed for another server": (
        lambda s, i, o: _body(s, i, ["tcp://192.0.2.1:1"], url="http://elsewhere:1"),
        403,
        "signature",
    ),
    "too many addresses": (
        lambda s, i, o: _body(s, i, [f"tcp://192.0.2.1:{p}" for p in range(1, 18)]),
        400,
        "at most 16",
    ),
    "http scheme": (lambda s, i, o: _body(s, i, ["http://192.0.2.1:80"]), 400, "tcp://"),
    "no port": (lambda s, i, o: _body(s, i, ["tcp://192.0.2.1"]), 400, "port"),
    "port 0": (lambda s, i, o: _body(s, i, ["tcp://192.0.2.1:0"]), 400, "port"),
    "huge address": (lambda s, i, o: _body(s, i, ["tcp://" + "a" * 300 + ":1"]), 400, "longer"),
    "no addresses": (lambda s, i, o: _body(s, i, []), 400, "no addresses"),
    "missing field": (
        lambda s, i, o: {
            k: v for k, v in _body(s, i, ["tcp://192.0.2.1:1"]).items() if k != "timestamp"
        },
        400,
        "timestamp",
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
async def test_rejected_announcements_store_nothing(
    identity: Identity, other_identity: Identity, case: str
) -> None:
    make, status, words = REJECTIONS[case]
    async with running_server() as server:
        response = await server.http.post(
            "/v1/announce", json=make(server, identity, other_identity)
        )
        assert response.status_code == status, response.text
        assert words in response.json()["error"]
        assert (await _lookup(server, identity)).status_code == 404
        assert (await _lookup(server, other_identity)).status_code == 404
        assert server.counter("p2psync_discovery_announces_total") == 0


async def test_garbage_json_is_400(identity: Identity) -> None:
    async with running_server() as server:
        for payload in (b"{not json", b"\xff\xfe", b"[1,2]", b"", b"[" * 60_000):
            response = await server.http.post("/v1/announce", content=payload)
            assert response.status_code == 400
            assert response.json()["error"]


async def test_replayed_announcement_is_409(identity: Identity) -> None:
    async with running_server() as server:
        body = _body(server, identity, ["tcp://192.0.2.1:1"])
        assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        replay = await server.http.post("/v1/announce", json=body)
        assert replay.status_code == 409
        assert "newer" in replay.json()["error"]
        older = _body(server, identity, ["tcp://192.0.2.9:9"], timestamp=int(server.clock.now) - 1)
        assert (await server.http.post("/v1/announce", json=older)).status_code == 409
        assert (await _lookup(server, identity)).json()["addresses"] == ["tcp://192.0.2.1:1"]
        server.clock.advance(1)
        newer = _body(server, identity, ["tcp://192.0.2.2:2"])
        assert (await server.http.post("/v1/announce", json=newer)).status_code == 204


async def test_oversized_body_is_413_with_and_without_content_length(identity: Identity) -> None:
    async with running_server(max_body=2048) as server:
        declared = await server.http.post("/v1/announce", content=b"x" * 4096)
        assert declared.status_code == 413
        assert "2048" in declared.json()["error"]

        async def chunks():  # no Content-Length: the limit is enforced while streaming
            for _ in range(64):
                yield b"y" * 1024

        streamed = await server.http.post("/v1/announce", content=chunks())
        assert streamed.status_code == 413
        assert server.service.metrics.rejects["body-too-large"] == 2


async def test_records_expire_after_the_ttl(identity: Identity) -> None:
    clock = FakeClock()
    async with running_server(clock=clock, ttl=600) as server:
        body = _body(server, identity, ["tcp://192.0.2.1:1"])
        assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        clock.advance(599)
        assert (await _lookup(server, identity)).status_code == 200
        clock.advance(1)
        assert (await _lookup(server, identity)).status_code == 404
        metrics = (await server.http.get("/metrics")).text
        assert "p2psync_discovery_devices 0\n" in metrics


async def test_a_repeated_lookup_follows_announces_and_lapses(identity: Identity) -> None:
    """Answers are encoded once per stored record: a new announcement or a lapsed
    address must still show in the next lookup."""
    clock = FakeClock()
    async with running_server(clock=clock, ttl=600) as server:
        body = _body(server, identity, ["tcp://192.0.2.1:1"])
        assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        first = (await _lookup(server, identity)).json()
        assert (await _lookup(server, identity)).json() == first
        clock.advance(300)
        body = _body(server, identity, ["tcp://192.0.2.2:2"])
        assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        both = (await _lookup(server, identity)).json()
        assert both["addresses"] == ["tcp://192.0.2.2:2", "tcp://192.0.2.1:1"]
        assert both["seen"] != first["seen"]
        clock.advance(300)  # the first address lapses
        last = (await _lookup(server, identity)).json()
        assert last == {"addresses": ["tcp://192.0.2.2:2"], "seen": both["seen"]}


async def test_rate_limit_is_429_with_retry_after(identity: Identity) -> None:
    async with running_server(rate=0.1, burst=3) as server:
        statuses = [(await _lookup(server, identity)).status_code for _ in range(3)]
        assert statuses == [404, 404, 404]
        limited = await _lookup(server, identity)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "10"
        assert "slow down" in limited.json()["error"]
        limited = await server.http.post(
            "/v1/announce", json=_body(server, identity, ["tcp://192.0.2.1:1"])
        )
        assert limited.status_code == 429
        assert (await server.http.get("/healthz")).status_code == 200  # not rate limited
        server.clock.advance(10)
        assert (await _lookup(server, identity)).status_code == 404
        assert server.counter("p2psync_discovery_rate_limited_total") == 2


async def test_metrics_counters_move(identity: Identity, other_identity: Identity) -> None:
    async with running_server() as server:
        await server.http.post("/v1/announce", json=_body(server, identity, ["tcp://192.0.2.1:1"]))
        await server.http.post("/v1/announce", json=_forge(server, other_identity, identity))
        await _lookup(server, identity)
        await _lookup(server, other_identity)
        await server.http.get("/v1/lookup", params={"device": "nope"})
        response = await server.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = set(response.text.splitlines())
        for expected in [
            "p2psync_discovery_announces_total 1",
            "p2psync_discovery_lookups_total 2",
            "p2psync_discovery_lookup_hits_total 1",
            "p2psync_discovery_lookup_misses_total 1",
            'p2psync_discovery_rejects_total{reason="bad-signature"} 1',
            'p2psync_discovery_rejects_total{reason="bad-device-id"} 1',
            "p2psync_discovery_rate_limited_total 0",
            "p2psync_discovery_devices 1",
        ]:
            assert expected in lines, expected


async def test_forwarded_for_only_when_trusted(identity: Identity) -> None:
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    async with running_server(trust_forwarded=True) as server:
        body = _body(server, identity, ["tcp://0.0.0.0:22000"])
        assert (
            await server.http.post("/v1/announce", json=body, headers=headers)
        ).status_code == 204
        assert (await _lookup(server, identity)).json()["addresses"] == ["tcp://203.0.113.7:22000"]
        bad = await server.http.post("/v1/announce", json=body, headers={"X-Forwarded-For": "evil"})
        assert bad.status_code == 400
    async with running_server() as server:
        body = _body(server, identity, ["tcp://0.0.0.0:22000"])
        assert (
            await server.http.post("/v1/announce", json=body, headers=headers)
        ).status_code == 204
        assert (await _lookup(server, identity)).json()["addresses"] == ["tcp://127.0.0.1:22000"]


async def test_health_and_json_errors_for_unknown_routes() -> None:
    async with running_server() as server:
        health = await server.http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        missing = await server.http.get("/nope")
        assert missing.status_code == 404 and missing.json()["error"]
        wrong_method = await server.http.get("/v1/announce")
        assert wrong_method.status_code == 405 and wrong_method.json()["error"]


async def test_https_with_cert_and_key(tmp_path: Path, identity: Identity) -> None:
    cert, key = write_tls_files(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    async with running_server(certfile=str(cert), keyfile=str(key), verify=context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        body = _body(server, identity, ["tcp://192.0.2.1:22000"])
        assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        assert (await _lookup(server, identity)).json()["addresses"] == ["tcp://192.0.2.1:22000"]


async def test_lookups_by_a_cached_text_still_follow_the_store(
    identity: Identity, other_identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A found device's text is kept to skip parsing it again: the answers must not
    change for it (another spelling, a full cache, a lapsed record)."""
    from discovery_server import service as service_module

    monkeypatch.setattr(service_module, "PARSED_CACHE_SIZE", 1)
    async with running_server() as server:
        for who, address in (
            (identity, "tcp://192.0.2.1:1"),
            (other_identity, "tcp://192.0.2.2:2"),
        ):
            body = _body(server, who, [address])
            assert (await server.http.post("/v1/announce", json=body)).status_code == 204
        lenient = str(identity.device_id).lower().replace("-", "")
        for _ in range(2):  # each lookup evicts the other device's text (cache of one)
            for who, address in (
                (identity, "tcp://192.0.2.1:1"),
                (other_identity, "tcp://192.0.2.2:2"),
            ):
                found = await _lookup(server, who)
                assert found.status_code == 200 and found.json()["addresses"] == [address]
            sloppy = await server.http.get("/v1/lookup", params={"device": lenient})
            assert sloppy.json()["addresses"] == ["tcp://192.0.2.1:1"]
        assert len(server.service._parsed) == 1
        server.clock.advance(server.service.settings.ttl + 1)
        assert (await _lookup(server, identity)).status_code == 404
        assert (await _lookup(server, other_identity)).status_code == 404
