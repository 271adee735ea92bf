"""1,100 idle TCP connections against a daemon process whose RLIMIT_NOFILE is 1,024
(soft and hard, set with prlimit so the daemon cannot raise it): the daemon refuses the
excess at once, keeps its file handles for its own work, and syncs a local edit to its
trusted peer while the flood is held (issue 17.2: before, accept() ran out of handles
and the next scan's EMFILE stopped the daemon)."""

from __future__ import annotations

import os

import trio
from faults import Daemon, share_folder
from hostile_tls import open_tcp
from nodes import FOLDER, Cluster, wait_for
from topo import start_unlinked

from p2psync.config import DeviceConfig, FolderConfig, load_config, save_config
from p2psync.identity import load_identity

LIMIT = 1024
FLOOD = 1100
# 100 connections from one address, 1,000 from 100 others: both caps are exercised.
SOURCES = ["127.0.0.1"] * 100 + [f"127.0.2.{i}" for i in range(1, 101) for _ in range(10)]


async def closed_soon(stream: trio.SocketStream, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        try:
            while await stream.receive_some(4096):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def test_idle_flood_under_a_1024_handle_limit(tmp_path, outcomes) -> None:
    assert len(SOURCES) == FLOOD
    cluster = Cluster(tmp_path, ["a", "b"])
    a_home, a_data = cluster.homes.pop("a"), cluster.data("a")
    cluster.names = ["b"]
    async with trio.open_nursery() as nursery:
        await start_unlinked(cluster, nursery)
        b = cluster.nodes["b"]
        a_id = load_identity(a_home).device_id
        a_listen = str(load_config(a_home).listen[0])
        cfg = b.config.with_device(
            DeviceConfig(id=a_id, name="a", addresses=(a_listen,))
        ).with_folder(
            FolderConfig(
                id=FOLDER,
                path=str(cluster.data("b")),
                devices=(a_id,),
                rescan_interval_s=0,
                watcher=False,
            )
        )
        save_config(cfg, cluster.homes["b"])
        await b.apply_config(cfg)
        share_folder(a_home, a_data, {cluster.homes["b"]: tuple(b.connections.listen_addresses)})
        daemon = Daemon(a_home, wrapper=["prlimit", f"--nofile={LIMIT}:{LIMIT}", "--"])
        daemon.start()
        flood: list[trio.SocketStream] = []
        try:
            await wait_for(lambda: daemon.ready() or not daemon.alive(), 60, "daemon ready")
            assert daemon.alive(), daemon.log_since_start()[-2000:]
            assert f"open-file limit {LIMIT}" in daemon.log_since_start()
            await wait_for(lambda: b.connections.is_connected(a_id), 60, "b connected to a")
            host, port = a_listen.removeprefix("tcp://").rsplit(":", 1)
            for source in SOURCES:
                flood.append(await open_tcp((host, int(port)), source=source))
            refused = 0  # closed by the daemon at once, well inside the 10 s deadline
            async with trio.open_nursery() as watchers:

                async def watch(stream: trio.SocketStream) -> None:
                    nonlocal refused
                    closed = await closed_soon(stream, 1)
                    refused += closed

                for stream in flood:
                    watchers.start_soon(watch, stream)
            assert refused >= FLOOD - 256, f"only {refused} of {FLOOD} refused"
            # A local edit on the daemon while the flood holds its places.
            body = os.urandom(20000)
            (a_data / "edit.bin").write_bytes(body)
            scan = await trio.to_thread.run_sync(daemon.cli, "scan")
            assert scan.returncode == 0, scan.stderr
            await wait_for(
                lambda: (
                    (cluster.data("b") / "edit.bin").exists()
                    and (cluster.data("b") / "edit.bin").read_bytes() == body
                ),
                60,
                "the edit synced to b during the flood",
            )
            assert daemon.alive(), daemon.log_since_start()[-2000:]
            log = daemon.log_since_start()
            assert "over the cap" in log
            assert "Traceback" not in log
        finally:
            for stream in flood:
                await trio.aclose_forcefully(stream)
            daemon.stop()
        nursery.cancel_scope.cancel()
    outcomes.record(
        "listener",
        f"{FLOOD} idle TCP connections, daemon RLIMIT_NOFILE {LIMIT} (soft = hard)",
        f"{refused} refused at once, a local edit synced during the flood, no traceback",
    )
