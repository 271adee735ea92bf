"""Serve the control API on our small h11 server (``http.serve``), inside the node's nursery."""

from __future__ import annotations

import logging
from functools import partial

import trio

from .auth import ensure_api_key, exposure_warning
from .handlers import WebMount, build_app
from .http import Limits, serve
from .parsing import MAX_BODY
from .registry import RunningNode

log = logging.getLogger("p2psync.api")

LIMITS = Limits(max_body=MAX_BODY)


async def serve_api(
    node: RunningNode,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    web: WebMount | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API for ``node`` until cancelled; reports the bound "host:port".

    The API key is read from (or created in) ``<node.home>/api.key``. ``web`` adds the
    web interface's routes (``p2psync.web.mount``; the wiring passes it).
    """
    key = await trio.to_thread.run_sync(ensure_api_key, node.home)
    bound: list[str] = []
    app = build_app(node, key=key, get_bound=lambda: bound[0] if bound else None, web=web)
    async with trio.open_nursery() as nursery:
        address: str = await nursery.start(partial(serve, app, host, port, limits=LIMITS))
        bound.append(address)
        log.info("control API listening on http://%s", address)
        warning = exposure_warning(address)
        if warning is not None:
            log.warning("%s", warning)
        task_status.started(address)
