"""The CLI's client for the daemon's control API (synchronous httpx).

Where the daemon listens: ``<home>/api.address`` (written by the running daemon; needed
when the config asks for port 0), else the ``api`` address in the config. Errors from the
daemon come back as the same ``P2PSyncError`` subclasses (the JSON carries the class
name), so the CLI prints the same message and exit code as an offline edit would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from .. import errors
from ..config import load_config
from ..errors import DaemonNotRunningError, NotFoundError, P2PSyncError, UsageError
from .auth import read_api_key

API_ADDRESS_FILE = "api.address"
DEFAULT_TIMEOUT = 10.0
PROBE_TIMEOUT = 3.0


def api_address(home: Path) -> str | None:
    """Where the daemon of ``home`` serves its API ("host:port"), or None if unknown."""
    try:
        text = (home / API_ADDRESS_FILE).read_text("utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        text = ""
    if text:
        return _connectable(text)
    cfg = load_config(home)
    host, _, port = cfg.api.rpartition(":")
    if port == "0":
        return None
    return _connectable(cfg.api)


def _connectable(address: str) -> str:
    """A wildcard bind address rewritten to the matching loopback address."""
    host, _, port = address.rpartition(":")
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


def _error_from(response: httpx.Response) -> P2PSyncError:
    try:
        body = response.json()
        message = str(body.get("error") or response.reason_phrase)
        kind = body.get("kind")
    except (ValueError, AttributeError):
        message, kind = response.text.strip() or response.reason_phrase, None
    cls = getattr(errors, kind, None) if isinstance(kind, str) else None
    if (
        isinstance(cls, type)
        and issubclass(cls, P2PSyncError)
        and cls.__init__ is Exception.__init__
    ):
        return cls(message)
    if response.status_code == 404:
        return NotFoundError(message)
    if response.status_code in (400, 409):
        return UsageError(message)
    if response.status_code in (401, 403):
        return P2PSyncError(f"the daemon refused the request: {message}")
    return P2PSyncError(f"the daemon answered {response.status_code}: {message}")


class ApiClient:
    def __init__(self, address: str, key: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self._http = httpx.Client(
            base_url=f"http://{address}",
            headers={"X-API-Key": key},
            timeout=timeout,
            trust_env=False,  # never through a proxy: the API is on loopback
        )

    @classmethod
    def for_home(cls, home: Path, *, timeout: float = DEFAULT_TIMEOUT) -> ApiClient:
        """A client for ``home``'s daemon; DaemonNotRunningError if it has no known address."""
        address = api_address(home)
        if address is None:
            raise DaemonNotRunningError(
                f"the p2psync daemon for {home} is not running (start it with `p2psync run`)"
            )
        return cls(address, read_api_key(home), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["json"] = json
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise DaemonNotRunningError(
                f"the p2psync daemon is not running (no API at http://{self.address}); "
                "start it with `p2psync run`"
            ) from exc
        except httpx.HTTPError as exc:
            raise P2PSyncError(
                f"talking to the daemon at http://{self.address} failed: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError as exc:
            raise P2PSyncError(f"the daemon sent a response that is not JSON: {exc}") from exc

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def check_home(self, home: Path) -> dict[str, Any]:
        """GET /api/system and make sure the daemon answering is the one of ``home``."""
        system = self.get("/api/system", timeout=PROBE_TIMEOUT)
        theirs = Path(str(system.get("home", ""))).resolve()
        if theirs != home.resolve():
            raise P2PSyncError(
                f"the API at http://{self.address} belongs to the node in {theirs}, not {home}"
            )
        return system


def running_daemon(home: Path) -> ApiClient | None:
    """A client for ``home``'s daemon if it is running and answering, else None."""
    try:
        client = ApiClient.for_home(home)
    except DaemonNotRunningError:
        return None
    try:
        client.check_home(home)
    except DaemonNotRunningError:
        client.close()
        return None
    except BaseException:
        client.close()
        raise
    return client
