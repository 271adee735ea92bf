"""What every group of the control API's handlers (and the web interface) works with:
the node, a small thread pool for blocking reads, config changes, and folder lookups."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from ..config import Config, FolderConfig
from ..errors import NotFoundError
from .http import HTTPException, Request
from .progress import CompletionCache
from .rates import RateMeter
from .registry import RunningFolder, RunningNode
from .responses import JSONResponse

Key = TypeVar("Key")
# sets the pause of the device or folder named in a config: (config, id, paused) -> config
PauseEdit = Callable[[Config, Key, bool], Config]


class ApiContext:
    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.limiter = trio.CapacityLimiter(2)
        self.meter = RateMeter()
        self.completions = CompletionCache()

    async def thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread (index reads, the pending store, versions)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def change(
        self, edit: Callable[[Config], Config], prepare: Callable[[], None] | None = None
    ) -> Config:
        """Apply ``edit`` to the current config (saved, then applied): ``Node.change_config``."""
        return await self.node.change_config(edit, prepare)

    def pause_handler(
        self, edit: PauseEdit[Key], paused: bool, key: Callable[[str], Key]
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        """A handler that pauses (or resumes) the device or folder named by the path's
        ``id`` (parsed by ``key``, e.g. ``DeviceID.parse``) through ``edit``."""

        async def handler(request: Request) -> JSONResponse:
            item = key(request.path_params["id"])
            await self.change(lambda cfg: edit(cfg, item, paused))
            return JSONResponse({"ok": True, "paused": paused})

        return handler

    def folder_config(self, folder_id: str) -> FolderConfig:
        fc = self.node.config.folder(folder_id)
        if fc is None:
            raise NotFoundError(f"folder {folder_id!r} does not exist")
        return fc

    def runner(self, folder_id: str) -> RunningFolder:
        """The running folder ``folder_id`` (404 if not configured, 409 if not running)."""
        self.folder_config(folder_id)
        runner = self.node.model.folders.get(folder_id)
        if runner is None:
            raise HTTPException(409, f"folder {folder_id!r} is not running")
        return runner
