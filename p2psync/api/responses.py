"""The control API's JSON answers, and its errors as JSON with the right status."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import ConfigError, DeviceIDError, NotFoundError, P2PSyncError, UsageError
from .http import ExceptionHandler, HTTPException, Request, Response

log = logging.getLogger("p2psync.api")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False).encode("utf-8")


def _error(status: int, message: str, kind: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if kind:
        body["kind"] = kind
    return JSONResponse(body, status_code=status)


def status_for(exc: P2PSyncError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UsageError | ConfigError | DeviceIDError | ValueError):
        return 400
    return 500


async def _p2psync_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, P2PSyncError)
    return _error(status_for(exc), str(exc), type(exc).__name__)


async def _value_error(request: Request, exc: Exception) -> JSONResponse:
    return _error(400, str(exc), "UsageError")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = _error(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers)  # e.g. Allow on a 405
    return response


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("API %s %s failed", request.method, request.path, exc_info=exc)
    return _error(500, f"internal error: {type(exc).__name__}")


# the most specific class wins (``http.App``)
EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    P2PSyncError: _p2psync_error,
    ValueError: _value_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}
