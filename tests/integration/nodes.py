"""Helpers for in-process nodes on loopback: real TLS, real files, real SQLite."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.lowlevel

from p2psync.config import Config, DeviceConfig, DiscoveryConfig, FolderConfig, save_config
from p2psync.identity import generate_identity, save_identity
from p2psync.wiring import Node, serve_node

FOLDER = "shared"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_home(base: Path, name: str, discovery: DiscoveryConfig | None = None) -> Path:
    home = base / name / "home"
    ident = generate_identity()
    save_identity(ident, home)
    cfg = Config(
        name=name,
        listen=(f"tcp://127.0.0.1:{free_port()}",),
        api="127.0.0.1:0",
        discovery=discovery or DiscoveryConfig(mdns=False),
    )
    save_config(cfg, home)
    (base / name / "data").mkdir(parents=True, exist_ok=True)
    return home


async def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> object:
    """Poll ``predicate`` until truthy or fail after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await trio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def tree_digest(root: Path) -> dict[str, str]:
    """name -> content hash (or 'dir' / 'link:target') for every user item under root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if not d.startswith(".p2p")]
        for d in dirnames:
            p = Path(dirpath, d)
            rel = os.path.normpath(os.path.join(rel_dir, d))
            out[rel] = "link:" + os.readlink(p) if p.is_symlink() else "dir"
        for f in filenames:
            if f.startswith(".p2p"):
                continue
            p = Path(dirpath, f)
            rel = os.path.normpath(os.path.join(rel_dir, f))
            try:
                if p.is_symlink():
                    out[rel] = "link:" + os.readlink(p)
                else:
                    out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            except FileNotFoundError:
                # renamed or deleted by a daemon while we walked: not a stable tree yet
                out[rel] = f"vanished:{id(p)}"
    return out


class Cluster:
    """N nodes that all trust each other and share FOLDER."""

    def __init__(
        self,
        base: Path,
        names: list[str],
        folder_type: dict[str, str] | None = None,
        *,
        dynamic: bool = False,
        discovery: DiscoveryConfig | None = None,
        watcher: bool = False,
    ) -> None:
        self.watcher = watcher
        self.dynamic = dynamic
        self.discovery = discovery
        self.base = base
        self.names = names
        self.homes = {n: make_home(base, n, discovery) for n in names}
        self.nodes: dict[str, Node] = {}
        self.scopes: dict[str, trio.CancelScope] = {}
        self.stopped: dict[str, trio.Event] = {}
        self.folder_type = folder_type or {}

    def data(self, name: str) -> Path:
        return self.base / name / "data"

    async def start(self, nursery: trio.Nursery, name: str) -> Node:
        stopped = trio.Event()

        async def runner(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with trio.CancelScope() as scope:
                    self.scopes[name] = scope
                    await serve_node(self.homes[name], task_status=task_status)
            finally:
                stopped.set()

        node = await nursery.start(runner)
        self.nodes[name] = node
        self.stopped[name] = stopped
        return node

    async def stop(self, name: str) -> None:
        """Cancel the node and wait until it has closed its index and released its home."""
        self.scopes.pop(name).cancel()
        self.nodes.pop(name)
        await self.stopped.pop(name).wait()

    async def start_all(self, nursery: trio.Nursery) -> None:
        for n in self.names:
            await self.start(nursery, n)
        await self.connect_all()

    async def connect_all(self) -> None:
        """Make every node trust every other with its real address, then share the folder."""
        from p2psync.identity import load_identity

        ids = {n: load_identity(self.homes[n]).device_id for n in self.names}
        for n, node in self.nodes.items():
            cfg = node.config
            for m in self.names:
                if m == n:
                    continue
                addrs = ("dynamic",)
                if m in self.nodes and not self.dynamic:
                    addrs = tuple(self.nodes[m].connections.listen_addresses)
                cfg = cfg.with_device(DeviceConfig(id=ids[m], name=m, addresses=addrs))
            cfg = cfg.with_folder(
                FolderConfig(
                    id=FOLDER,
                    path=str(self.data(n)),
                    devices=tuple(ids[m] for m in self.names if m != n),
                    rescan_interval_s=0,
                    watcher=self.watcher,
                    type=self.folder_type.get(n, "sendreceive"),
                )
            )
            save_config(cfg, self.homes[n])
            await node.apply_config(cfg)

    def runner(self, name: str):
        return self.nodes[name].model.folders[FOLDER]

    def scan(self, name: str) -> None:
        self.runner(name).request_scan(None)

    def connected(self, a: str, b: str) -> bool:
        other = self.nodes[b].device_id
        return self.nodes[a].connections.is_connected(other)

    def in_sync(self) -> bool:
        digests = [tree_digest(self.data(n)) for n in self.nodes]
        return all(d == digests[0] for d in digests[1:])


@asynccontextmanager
async def running_cluster(base: Path, names: list[str], **kw):
    cluster = Cluster(base, names, **kw)
    async with trio.open_nursery() as nursery:
        await cluster.start_all(nursery)
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()
