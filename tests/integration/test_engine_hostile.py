"""A trusted but hostile peer (hostile_peer.py) against a real node: names escaping the
folder, symlinked parents, blocks that do not match their hash, requests for what must
not be served, and a request flood. Nothing may be written outside the folder, nothing
served that should not be, and each refusal is logged."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from hostile_peer import (
    HostilePeer,
    file_info,
    plain_file,
    raw_index,
    symlink_info,
    trust_hostile,
)
from nodes import FOLDER, Cluster
from nodes import wait_for as _wait_for

from p2psync.protocol.messages import ErrorCode, Index, Request, Response
from p2psync.wiring import Node

KiB = 1024


async def wait_for(check: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:  # noqa: ASYNC109
    await _wait_for(check, timeout=timeout, what=what)


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (not following symlinks)."""
    out = set()
    for d, dirs, files in os.walk(root):
        out.update(os.path.join(d, n) for n in dirs + files)
    return out


@asynccontextmanager
async def node_with_hostile(tmp_path: Path) -> AsyncIterator[tuple[Cluster, Node, HostilePeer]]:
    c = Cluster(tmp_path, ["a"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        node = c.nodes["a"]
        hostile = HostilePeer()
        await trust_hostile(node, FOLDER, hostile.identity)
        # the folder's first scan (which creates its .p2psync marker) is done
        await wait_for(
            lambda: node.model.folders[FOLDER].status.state == "idle", what="folder idle"
        )
        await hostile.connect(node, FOLDER)
        try:
            yield c, node, hostile
        finally:
            await hostile.aclose()
            nursery.cancel_scope.cancel()


def outside_dir(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir(exist_ok=True)
    return out


# ---- (a) names escaping the folder -------------------------------------------------------

ESCAPING = [
    "../escape.txt",
    "sub/../../escape.txt",
    "ABSOLUTE",
    "..\\escape.txt",
    "nul\x00.txt",
    "./x",
]


@pytest.mark.parametrize("bad_name", ESCAPING)
async def test_escaping_name_closes_connection_and_writes_nothing(
    tmp_path: Path, bad_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outside = outside_dir(tmp_path)
    if bad_name == "ABSOLUTE":
        bad_name = str(outside / "abs.txt")
    async with node_with_hostile(tmp_path) as (c, node, hostile):
        before = snapshot(tmp_path)
        good = file_info("placeholder", b"evil payload", short_id=hostile.short_id)
        await hostile.send_raw(raw_index(FOLDER, [plain_file(good, name=bad_name)]))
        with trio.fail_after(10):
            await hostile.read_until_closed()
        await wait_for(lambda: not node.connections.is_connected(hostile.device_id), what="drop")
        assert snapshot(tmp_path) - before == set(), "something was written"
        assert not (tmp_path / "a" / "escape.txt").exists()
        assert list(node.index.iter_device(FOLDER, hostile.device_id.raw)) == []
    assert any(
        "closing connection" in r.getMessage() and r.levelno >= logging.WARNING
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


# ---- (b) symlinked parents -------------------------------------------------------------


def block_server(files: dict[str, bytes]) -> Callable[[Request], bytes | None]:
    def serve(req: Request) -> bytes | None:
        data = files.get(req.name)
        return None if data is None else data[req.offset : req.offset + req.size]

    return serve


async def test_announced_symlink_then_file_through_it_stays_inside(tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    async with node_with_hostile(tmp_path) as (c, node, hostile), trio.open_nursery() as n:
        payload = b"evil through a symlink"
        n.start_soon(hostile.serve, block_server({"link/evil.txt": payload}))
        link = symlink_info("link", str(outside), short_id=hostile.short_id, seq=1)
        evil = file_info("link/evil.txt", payload, short_id=hostile.short_id, seq=2)
        await hostile.send(Index(folder=FOLDER, files=(link, evil), last_sequence=2))
        runner = c.runner("a")
        await wait_for(
            lambda: (
                "link/evil.txt" in runner.status.item_errors
                or node.index.get_local(FOLDER, "link/evil.txt") is not None
            ),
            what="the node handled link/evil.txt",
        )
        assert list(outside.iterdir()) == [], "a file was written through the symlink"
        data = c.data("a")
        if (data / "link").is_symlink():
            assert "link/evil.txt" in runner.status.item_errors
        n.cancel_scope.cancel()


async def test_file_under_local_symlink_is_refused(tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    async with node_with_hostile(tmp_path) as (c, node, hostile), trio.open_nursery() as n:
        os.symlink(outside, c.data("a") / "link")
        c.scan("a")
        await wait_for(lambda: node.index.get_local(FOLDER, "link") is not None, what="scan")
        payload = b"evil through a local symlink"
        n.start_soon(hostile.serve, block_server({"link/evil.txt": payload}))
        evil = file_info("link/evil.txt", payload, short_id=hostile.short_id)
        await hostile.send(Index(folder=FOLDER, files=(evil,), last_sequence=1))
        runner = c.runner("a")
        await wait_for(lambda: "link/evil.txt" in runner.status.item_errors, what="item error")
        assert list(outside.iterdir()) == []
        assert (c.data("a") / "link").is_symlink()
        n.cancel_scope.cancel()


# ---- (c) blocks that do not match their hash ----------------------------------------------


async def test_blocks_not_matching_hash_are_not_written(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with node_with_hostile(tmp_path) as (c, node, hostile), trio.open_nursery() as n:
        real = os.urandom(300 * KiB)
        corrupt = bytearray(real)
        corrupt[200 * KiB] ^= 0xFF  # the second block is served wrong
        n.start_soon(hostile.serve, block_server({"bad.bin": bytes(corrupt)}))
        await hostile.send(
            Index(
                folder=FOLDER,
                files=(file_info("bad.bin", real, short_id=hostile.short_id),),
                last_sequence=1,
            )
        )
        runner = c.runner("a")
        await wait_for(lambda: "bad.bin" in runner.status.item_errors, what="item error")
        assert "hash" in runner.status.item_errors["bad.bin"], runner.status.item_errors
        assert not (c.data("a") / "bad.bin").exists(), "a corrupt file became visible"
        assert node.index.get_local(FOLDER, "bad.bin") is None
        assert any("bad.bin" in r.getMessage() for r in caplog.records)
        n.cancel_scope.cancel()


# ---- (d) requests for what must not be served -------------------------------------------


async def ask(hostile: HostilePeer, name: str, offset: int, size: int, hash: bytes) -> Response:
    req = hostile.request_message(FOLDER, name, offset, size, hash)
    await hostile.send(req)
    with trio.fail_after(10):
        while True:
            ev = await hostile.next_event()
            if isinstance(ev, Response) and ev.id == req.id:
                return ev


async def test_requests_for_unindexed_ignored_internal_and_out_of_range(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with node_with_hostile(tmp_path) as (c, node, hostile):
        data = c.data("a")
        real = os.urandom(300 * KiB)
        (data / "real.bin").write_bytes(real)
        secret = b"ignored secret"
        (data / "secret.txt").write_bytes(secret)
        (data / ".p2pignore").write_text("secret*\n")
        (data / ".p2pversions").mkdir()
        (data / ".p2pversions" / "old.txt").write_bytes(secret)
        (data / ".p2psync.real.bin.tmp").write_bytes(secret)
        c.scan("a")
        await wait_for(lambda: node.index.get_local(FOLDER, "real.bin") is not None, what="scan")
        fi = node.index.get_local(FOLDER, "real.bin")
        h = hashlib.sha256(secret).digest()

        refused = {
            "unindexed": ("nothere.txt", 0, len(secret), h),
            "ignored": ("secret.txt", 0, len(secret), h),
            "versions": (".p2pversions/old.txt", 0, len(secret), h),
            "temp": (".p2psync.real.bin.tmp", 0, len(secret), h),
            "marker": (".p2psync", 0, 1, h),
            "ignore file": (".p2pignore", 0, 8, hashlib.sha256(b"secret*\n").digest()),
            "past the end": ("real.bin", 10 * 1024 * KiB, fi.blocks[0].size, fi.blocks[0].hash),
            "wrong hash": ("real.bin", 0, fi.blocks[0].size, h),
            "wrong size": ("real.bin", 0, 17, fi.blocks[0].hash),
        }
        for what, (name, offset, size, digest) in refused.items():
            resp = await ask(hostile, name, offset, size, digest)
            assert resp.code != ErrorCode.NO_ERROR and resp.data == b"", f"{what} was served"
        b1 = fi.blocks[1]
        resp = await ask(hostile, "real.bin", b1.offset, b1.size, b1.hash)
        assert resp.code == ErrorCode.NO_ERROR
        assert resp.data == real[b1.offset : b1.offset + b1.size]
        assert node.connections.is_connected(hostile.device_id), "refusals must not drop the peer"
    refusals = [r for r in caplog.records if "refused request" in r.getMessage()]
    assert len(refusals) >= 5, [r.getMessage() for r in caplog.records]


# ---- (e) a request flood -------------------------------------------------------------


async def test_request_flood_stays_within_the_byte_budget(tmp_path: Path) -> None:
    async with node_with_hostile(tmp_path) as (c, node, hostile), trio.open_nursery() as n:
        data = c.data("a")
        (data / "big.bin").write_bytes(os.urandom(1024 * KiB))
        c.scan("a")
        await wait_for(lambda: node.index.get_local(FOLDER, "big.bin") is not None, what="scan")
        blocks = node.index.get_local(FOLDER, "big.bin").blocks
        peer = node.model.connections[hostile.device_id]
        budget = peer.incoming

        async def flood() -> None:  # never reads a Response
            for i in range(3000):
                b = blocks[i % len(blocks)]
                await hostile.send(
                    hostile.request_message(FOLDER, "big.bin", b.offset, b.size, b.hash)
                )

        n.start_soon(flood)
        await wait_for(
            lambda: budget.in_use >= budget.capacity - blocks[0].size,
            what="the flood fills the incoming budget",
        )
        stats = budget.statistics()
        assert stats["peak"] <= stats["capacity"], stats
        n.cancel_scope.cancel()
