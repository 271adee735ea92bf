"""Run the discovery app on hypercorn's trio worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .app import DiscoveryService, ServerSettings, create_app
from .logsetup import ServerLogger
from .stores import Store

log = logging.getLogger(__name__)


async def serve_discovery(
    settings: ServerSettings,
    store: Store,
    *,
    listen: str = "127.0.0.1:22027",
    certfile: str | None = None,
    keyfile: str | None = None,
    clock: Callable[[], float] = time.time,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    task_status: trio.TaskStatus[tuple[list[str], DiscoveryService]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled or ``shutdown_trigger`` returns.

    Reports (bound URLs, service) once listening; with ``settings.url`` None the public
    URL (used in signature checks) becomes the first bound URL.
    """
    app, service = create_app(settings, store, clock=clock)
    config = Config()
    config.bind = [listen]
    config.certfile = certfile
    config.keyfile = keyfile
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.logger_class = ServerLogger  # each line once; one DEBUG line per request
    config.include_server_header = False
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(
                app,  # type: ignore[arg-type]  # Starlette is ASGI; hypercorn's alias is narrower
                config,
                shutdown_trigger=shutdown_trigger,
                task_status=task_status,
            )
        )
        if service.url is None:
            service.url = binds[0]
            if any(h in binds[0] for h in ("//0.0.0.0:", "//[::]:")):
                log.warning(
                    "public URL derived as %s, which clients cannot use: set --url", binds[0]
                )
        log.info("discovery server on %s, public URL %s", ", ".join(binds), service.url)
        task_status.started((binds, service))
