"""Reading a control API request: its JSON body, fields, query parameters and times.

Whatever a client sends that does not fit is a ``UsageError`` (a 400 naming the field),
never a 500.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..identity import DeviceID
from .http import Request

MAX_BODY = 1 << 20
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime holds


async def body(request: Request) -> dict[str, Any]:
    raw = await request.body()  # at most MAX_BODY: the server answers 413 beyond it
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"request body is not JSON: {exc}") from None
    except RecursionError:
        raise UsageError("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise UsageError("request body must be a JSON object")
    return data


def str_field(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise UsageError(f"{key!r} is required")
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{key!r} must be a string")
    return value


def device_in_path(request: Request) -> DeviceID:
    """The device the request's path names (``/devices/{id}/...``), parsed once here."""
    return DeviceID.parse(request.path_params["id"])


def str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key!r} must be a list of strings")
    return list(value)


def int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name} must be an integer, not {raw!r}") from None


def float_param(raw: str | None, name: str, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{name} must be finite")
    return value


def parse_time(value: Any) -> dt.datetime | None:
    """A restore point: None, Unix seconds (number or numeric string, 0 to the end of
    the year 9999) or ISO 8601 text (naive = local time)."""
    if value is None or value == "":
        return None
    wrong = f"'at' must be a Unix time or an ISO 8601 date, not {_shown(value)}"
    if isinstance(value, bool):
        raise UsageError(wrong)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise UsageError(wrong) from None
    if not isinstance(value, int | float):
        raise UsageError(wrong)
    if not 0 <= value <= MAX_UNIX_TIME:  # False for NaN too
        raise UsageError(
            f"'at' must be a Unix time from 0 to {MAX_UNIX_TIME} (the end of the year 9999), "
            f"not {_shown(value)}"
        )
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def user_path(raw: str) -> Path:
    """A folder path from a request: ``~`` expanded; must then be absolute (checked by
    ``edits``) because the daemon's working directory means nothing to the caller."""
    return Path(raw).expanduser()


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from exc
