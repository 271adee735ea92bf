"""Wiring in-process nodes (tests/integration/nodes.py) with chosen addresses, so a
connection can be routed through a chaos proxy or not dialled at all."""

from __future__ import annotations

from nodes import FOLDER, Cluster

from p2psync.config import DeviceConfig, FolderConfig, save_config
from p2psync.identity import load_identity

NO_DIAL = ("dynamic",)  # with discovery off: never dialled, only accepted


def listen_of(cluster: Cluster, name: str) -> tuple[str, int]:
    url = cluster.nodes[name].connections.listen_addresses[0]
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    return host.strip("[]"), int(port)


async def link(
    cluster: Cluster,
    addresses: dict[tuple[str, str], tuple[str, ...]] | None = None,
    **folder: object,
) -> None:
    """Like ``Cluster.connect_all``, but ``addresses[(a, b)]`` is where ``a`` dials ``b``."""
    addresses = addresses or {}
    ids = {n: load_identity(cluster.homes[n]).device_id for n in cluster.names}
    for n, node in cluster.nodes.items():
        cfg = node.config
        for m in cluster.names:
            if m == n:
                continue
            addrs = addresses.get((n, m))
            if addrs is None:
                addrs = (
                    tuple(cluster.nodes[m].connections.listen_addresses)
                    if m in cluster.nodes
                    else NO_DIAL
                )
            cfg = cfg.with_device(DeviceConfig(id=ids[m], name=m, addresses=addrs))
        cfg = cfg.with_folder(
            FolderConfig(
                id=FOLDER,
                path=str(cluster.data(n)),
                devices=tuple(ids[m] for m in cluster.names if m != n),
                rescan_interval_s=0,
                watcher=False,
                type=cluster.folder_type.get(n, "sendreceive"),
                **folder,  # type: ignore[arg-type]
            )
        )
        save_config(cfg, cluster.homes[n])
        await node.apply_config(cfg)


async def start_unlinked(cluster: Cluster, nursery) -> None:
    for n in cluster.names:
        await cluster.start(nursery, n)
