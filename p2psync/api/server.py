"""Serve the control API on hypercorn's trio worker, inside the node's nursery."""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from .app import build_app
from .auth import ensure_api_key

log = logging.getLogger("p2psync.api")

GRACEFUL_TIMEOUT = 2.0


def _bind_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_api(
    node: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API for ``node`` until cancelled; reports the bound "host:port".

    The API key is read from (or created in) ``<node.home>/api.key``.
    """
    key = await trio.to_thread.run_sync(ensure_api_key, node.home)
    bound: list[str] = []
    app = build_app(node, key=key, get_bound=lambda: bound[0] if bound else None)
    config = HypercornConfig()
    config.bind = [_bind_text(host, port)]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.accesslog = None
    config.errorlog = logging.getLogger("p2psync.api.server")
    config.include_server_header = False
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(app, config, task_status=task_status)  # type: ignore[arg-type]
        )
        address = binds[0].removeprefix("http://")
        bound.append(address)
        log.info("control API listening on http://%s", address)
        task_status.started(address)
