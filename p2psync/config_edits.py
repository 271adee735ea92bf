"""Config edits asked for by parts built before the node that applies them.

The sync model takes an introducer's devices by editing the config, but the node that
saves and applies an edit is built from the model. Instead of a reference patched in
afterwards, the wiring gives the model ``ConfigEdits.change`` and runs
``ConfigEdits.serve`` with the node's ``change_config``: a bounded channel between them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from .config import Config

Edit = Callable[[Config], Config]
Apply = Callable[[Edit], Awaitable[Config]]

MAX_WAITING = 16  # edits waiting to be applied; a requester waits when more are


@dataclass
class _Request:
    edit: Edit
    done: trio.Event = field(default_factory=trio.Event)
    result: Config | None = None
    error: Exception | None = None


class ConfigEdits:
    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[_Request](MAX_WAITING)

    async def change(self, edit: Edit) -> Config:
        """Save and apply ``edit``; returns the new config, or raises what applying it
        raised (e.g. ConfigError while config.toml is invalid)."""
        request = _Request(edit)
        await self._send.send(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    async def serve(
        self, apply: Apply, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply the edits asked for, one at a time, until cancelled."""
        task_status.started()
        async for request in self._receive:
            try:
                request.result = await apply(request.edit)
            except Exception as exc:  # the requester handles it, as if it had applied it
                request.error = exc
            request.done.set()  # not when cancelled: the requester is cancelled with us
