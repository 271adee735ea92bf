"""Detect two tasks using one direction of a stream at once (trio's stream contract)."""

from __future__ import annotations

from types import TracebackType

import trio


class ConflictDetector:
    """``with detector:`` raises trio.BusyResourceError if another task is inside."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held
