"""In-process nodes with the control API on loopback, queried through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from p2psync.api.auth import ensure_api_key
from p2psync.api.server import serve_api
from p2psync.config import Config, DiscoveryConfig, save_config
from p2psync.identity import generate_identity, save_identity
from p2psync.web import mount
from p2psync.wiring import Node, serve_node


def make_home(base: Path, name: str) -> Path:
    home = base / name / "home"
    save_identity(generate_identity(), home)
    cfg = Config(
        name=name,
        listen=("tcp://127.0.0.1:0",),
        api="127.0.0.1:0",
        discovery=DiscoveryConfig(mdns=False),
    )
    save_config(cfg, home)
    (base / name / "data").mkdir(parents=True, exist_ok=True)
    return home


@dataclass
class ApiNode:
    node: Node
    address: str
    key: str
    client: httpx.AsyncClient
    data: Path


@asynccontextmanager
async def api_node(base: Path, name: str = "alpha") -> AsyncIterator[ApiNode]:
    """A running node plus its API (started here, as services.py would) and a client."""
    home = make_home(base, name)
    key = ensure_api_key(home)
    async with trio.open_nursery() as nursery:
        node: Node = await nursery.start(serve_node, home)
        # serve_node may already run the API through services.py; either way use our own.
        address = await nursery.start(
            lambda task_status: serve_api(
                node, host="127.0.0.1", port=0, web=mount, task_status=task_status
            )
        )
        if getattr(node, "api_address", None) is None:
            node.api_address = address
        async with httpx.AsyncClient(
            base_url=f"http://{address}", headers={"X-API-Key": key}, timeout=20
        ) as client:
            try:
                yield ApiNode(node, address, key, client, base / name / "data")
            finally:
                nursery.cancel_scope.cancel()


async def wait_for_async(fetch, within: float = 15.0, what: str = "condition"):
    with trio.move_on_after(within):
        while True:
            value = await fetch()
            if value:
                return value
            await trio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")
