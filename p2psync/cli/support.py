"""What every CLI command module shares: the context object, error handling, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from ..config import Config, parse_config
from ..errors import ConfigError, DaemonNotRunningError, P2PSyncError
from ..identity import DeviceID
from .offline_service import OfflineNode

if TYPE_CHECKING:  # the HTTP client (httpx) is imported only by commands that use it,
    from ..api.client import ApiClient  # which keeps `p2psync run` lean


class Context:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.offline = OfflineNode(home)
        self._client: ApiClient | None = None
        self._probed = False
        self._daemon_config: Config | None = None

    def config(self) -> Config:
        """config.toml; while it is invalid and a daemon runs, the daemon's last good config
        (with a warning), so that reads keep working; writes are refused by the daemon."""
        try:
            return self.offline.load_config()
        except ConfigError as exc:
            if not self.offline.has_config():
                raise
            client = self.daemon()
            if client is None:
                raise
            if self._daemon_config is None:
                click.echo(f"warning: {exc}; using the running daemon's last good config", err=True)
                self._daemon_config = parse_config(client.get("/api/config")["config"])
            return self._daemon_config

    def own_id(self) -> DeviceID:
        return self.offline.own_id()

    def daemon(self) -> ApiClient | None:
        """The running daemon's API client, or None when no daemon answers."""
        if not self._probed:
            self._probed = True
            if not self.offline.has_config():  # a clear "run p2psync init" first
                self.offline.load_config()
            from ..api.client import running_daemon

            self._client = running_daemon(self.home)
            if self._client is not None:
                click.get_current_context().call_on_close(self._client.close)
        return self._client

    def need_daemon(self) -> ApiClient:
        client = self.daemon()
        if client is None:
            raise DaemonNotRunningError(
                f"the p2psync daemon for {self.home} is not running (start it with `p2psync run`)"
            )
        return client


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn P2PSyncError into a one-line message and the error's exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except P2PSyncError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


class ErrorGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        return handle_errors(super().invoke)(ctx)


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def parse_device_id(text: str) -> DeviceID:
    return DeviceID.parse(text)


def device_by_id_or_name(cfg: Config, text: str) -> DeviceID:
    """A configured device named by its ID or by its (unique) name."""
    named = [d for d in cfg.devices if d.name == text]
    if len(named) == 1:
        return named[0].id
    return DeviceID.parse(text)


def url_segment(segment: str) -> str:
    """A URL path segment (folder IDs are restricted, but never trust that)."""
    return quote(segment, safe="")


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
