"""Network faults between two nodes through the chaos proxy: cut, flipped bytes, stalls,
throttling and a partition. Whatever happens on the wire, the receiver never holds a
file whose content is not the sender's, and sync completes once the faults stop."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from chaos_proxy import ChaosProxy, Fault
from faults import sha, temp_files, user_files
from nodes import Cluster, tree_digest, wait_for
from topo import NO_DIAL, link, listen_of, start_unlinked

SEED = 20240817


def write_files(root: Path, rng: random.Random, count: int, max_size: int) -> dict[str, str]:
    expected = {}
    for i in range(count):
        data = rng.randbytes(rng.randint(1, max_size))
        name = f"d{i % 3}/f{i:03d}.bin"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        expected[name] = sha(data)
    return expected


async def watch_for_corruption(root: Path, expected: dict[str, str], seen: list[str]) -> None:
    """Record every user file that ever holds content the sender never had."""
    while True:
        for name, digest in (await trio.to_thread.run_sync(user_files, root)).items():
            if expected.get(name) != digest:
                seen.append(name)
        await trio.sleep(0.05)


async def run_through_proxy(
    tmp_path: Path, fault: Fault | None, *, count: int = 16, max_size: int = 700_000
):
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await start_unlinked(c, nursery)
        proxy = ChaosProxy(listen_of(c, "a"), seed=SEED)
        await nursery.start(proxy.serve)
        proxy.set_fault(fault)
        expected = write_files(c.data("a"), random.Random(SEED), count, max_size)
        corrupt: list[str] = []
        nursery.start_soon(watch_for_corruption, c.data("b"), expected, corrupt)
        await link(c, {("a", "b"): NO_DIAL, ("b", "a"): (proxy.address,)})
        c.scan("a")
        await wait_for(
            lambda: user_files(c.data("b")) == expected, timeout=60, what="sync through the proxy"
        )
        assert not corrupt, f"corrupt content seen at {sorted(set(corrupt))}"
        assert not temp_files(c.data("b"))
        nursery.cancel_scope.cancel()
    return proxy


@pytest.mark.parametrize(
    "fault",
    [
        Fault("flip", count=4, at_bytes=(1, 2_000_000)),
        Fault("cut", count=4, at_bytes=(1, 2_000_000)),
        Fault("stall", count=2, at_bytes=(10_000, 1_000_000), seconds=1.0),
    ],
    ids=["flip", "cut", "stall"],
)
async def test_wire_faults_never_corrupt_and_sync_completes(
    tmp_path, outcomes, fault: Fault
) -> None:
    proxy = await run_through_proxy(tmp_path, fault)
    struck = proxy.stats.faults.get(fault.kind, 0)
    assert struck >= 1, "the fault never struck; the test proved nothing"
    if fault.kind in ("flip", "cut"):
        assert proxy.stats.connections >= 2, "a broken connection must be re-established"
    outcomes.record(
        "network",
        f"{fault.kind} a connection at a random byte",
        "converged, no corrupt file",
        trials=struck,
        detail=f"{proxy.stats.connections} connections, "
        f"{proxy.stats.bytes_down + proxy.stats.bytes_up} bytes proxied",
    )


async def test_throttled_link_completes(tmp_path, outcomes) -> None:
    proxy = await run_through_proxy(
        tmp_path,
        Fault("throttle", count=1, at_bytes=(1, 1000), rate=4 << 20),
        count=8,
        max_size=800_000,
    )
    assert proxy.stats.faults.get("throttle") == 1
    outcomes.record(
        "network", "throttle to 4 MiB/s", "converged", detail=f"{proxy.stats.bytes_down} bytes down"
    )


async def test_partition_then_heal(tmp_path, outcomes) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await start_unlinked(c, nursery)
        proxy = ChaosProxy(listen_of(c, "a"), seed=SEED)
        await nursery.start(proxy.serve)
        (c.data("a") / "before.txt").write_text("before the partition")
        (c.data("b") / "local-b.txt").write_text("b's own file")
        await link(c, {("a", "b"): NO_DIAL, ("b", "a"): (proxy.address,)})
        c.scan("a")
        c.scan("b")
        await wait_for(
            lambda: c.in_sync() and len(tree_digest(c.data("a"))) == 2, what="initial sync"
        )

        proxy.partition()
        await wait_for(lambda: not c.connected("b", "a"), what="b notices the partition")
        (c.data("a") / "during.txt").write_text("written while partitioned")
        (c.data("b") / "local-b.txt").write_text("b edits while partitioned")
        seq = c.runner("a").local_sequence
        c.scan("a")
        c.scan("b")
        await wait_for(lambda: proxy.stats.refused >= 2, what="b retrying while partitioned")
        assert not (c.data("b") / "during.txt").exists()
        assert seq is c.runner("a").local_sequence

        proxy.heal()
        await wait_for(lambda: c.connected("b", "a"), timeout=30, what="reconnect after heal")
        await wait_for(
            lambda: c.in_sync() and (c.data("b") / "during.txt").exists(), what="sync after heal"
        )
        assert (c.data("a") / "local-b.txt").read_text() == "b edits while partitioned"
        assert not [n for n in tree_digest(c.data("a")) if ".sync-conflict-" in n]
        nursery.cancel_scope.cancel()
    outcomes.record(
        "network",
        "partition, edits on both sides, heal",
        "converged",
        detail=f"{proxy.stats.refused} refused dials while partitioned",
    )
