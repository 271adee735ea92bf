"""Persistence: several instances sharing Redis, and the SQLite snapshot across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from dsrv_helpers import FakeClock, running_server

from discovery_server.stores import RedisStore, open_store
from discovery_server.stores.memory import load_snapshot
from p2psync.discovery.announcement import sign_announcement
from p2psync.errors import ConfigError
from p2psync.identity import Identity


async def test_two_instances_sharing_redis_see_each_other(
    redis_url: str, identity: Identity, other_identity: Identity
) -> None:
    clock = FakeClock()
    store_a = RedisStore.from_url(redis_url, prefix="shared-test:")
    store_b = RedisStore.from_url(redis_url, prefix="shared-test:")
    async with running_server(store_a, clock=clock) as a, running_server(store_b, clock=clock) as b:
        body = sign_announcement(identity, ["tcp://192.0.2.1:22000"], int(clock.now), a.url)
        assert (await a.http.post("/v1/announce", json=body)).status_code == 204
        found = await b.http.get("/v1/lookup", params={"device": str(identity.device_id)})
        assert found.status_code == 200
        assert found.json()["addresses"] == ["tcp://192.0.2.1:22000"]
        assert "p2psync_discovery_devices 1\n" in (await b.http.get("/metrics")).text
        # Replay protection is shared too: the same body re-signed for B is a replay there.
        replay = sign_announcement(identity, ["tcp://192.0.2.1:22000"], int(clock.now), b.url)
        assert (await b.http.post("/v1/announce", json=replay)).status_code == 409
        missing = await a.http.get("/v1/lookup", params={"device": str(other_identity.device_id)})
        assert missing.status_code == 404
    await store_a.aclose()
    await store_b.aclose()


async def test_redis_namespaces_are_separate(redis_url: str, identity: Identity) -> None:
    clock = FakeClock()
    async with running_server(RedisStore.from_url(redis_url, prefix="ns-one:"), clock=clock) as a:
        async with running_server(
            RedisStore.from_url(redis_url, prefix="ns-two:"), clock=clock
        ) as b:
            body = sign_announcement(identity, ["tcp://192.0.2.1:1"], int(clock.now), a.url)
            assert (await a.http.post("/v1/announce", json=body)).status_code == 204
            found = await b.http.get("/v1/lookup", params={"device": str(identity.device_id)})
            assert found.status_code == 404


async def test_open_store_reports_unreachable_redis() -> None:
    with pytest.raises(ConfigError, match="Redis"):
        async with open_store("redis://127.0.0.1:1/0", clock=FakeClock()):
            pass


async def test_sqlite_snapshot_survives_a_restart(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "disco.sqlite"
    clock = FakeClock()
    async with open_store(str(path), clock=clock) as store:
        async with running_server(store, clock=clock) as server:
            body = sign_announcement(
                identity, ["tcp://192.0.2.1:22000"], int(clock.now), server.url
            )
            assert (await server.http.post("/v1/announce", json=body)).status_code == 204
    assert path.exists()
    clock.advance(30)
    async with open_store(str(path), clock=clock) as store:
        async with running_server(store, clock=clock) as server:
            found = await server.http.get("/v1/lookup", params={"device": str(identity.device_id)})
            assert found.status_code == 200
            assert found.json()["addresses"] == ["tcp://192.0.2.1:22000"]
            # The replay record came back too.
            replay = sign_announcement(
                identity, ["tcp://192.0.2.1:1"], int(clock.now) - 30, server.url
            )
            assert (await server.http.post("/v1/announce", json=replay)).status_code == 409


async def test_periodic_snapshot_without_shutdown(tmp_path: Path, identity: Identity) -> None:
    """The upkeep task writes the file on its interval, not only at close."""
    path = tmp_path / "periodic.sqlite"
    clock = FakeClock()
    async with open_store(str(path), clock=clock, sweep_interval=0.05) as store:
        await store.put(identity.device_id, ["tcp://192.0.2.1:1"], clock.now, 600)
        with trio.fail_after(10):
            # The file is written by a worker thread, so there is no event to wait on: poll.
            while not await trio.to_thread.run_sync(lambda: load_snapshot(path).devices):  # noqa: ASYNC110
                await trio.sleep(0.05)
    assert identity.device_id.raw in load_snapshot(path).devices


async def test_unreadable_snapshot_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="snapshot"):
        async with open_store(str(path), clock=FakeClock()):
            pass
    other = tmp_path / "future.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigError, match="schema version"):
        async with open_store(str(other), clock=FakeClock()):
            pass


async def test_unreachable_redis_answers_503_not_500(identity: Identity) -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    async with running_server(store) as server:
        for response in (
            await server.http.get("/healthz"),
            await server.http.get("/v1/lookup", params={"device": str(identity.device_id)}),
        ):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "60"
            assert "unavailable" in response.json()["error"]
