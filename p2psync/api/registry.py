"""What the control API and the web interface read and steer of a running node.

Typed as Protocols so that the API names what it needs (the folder registry, each
folder's status, the connections' state, the config operations) instead of taking the
whole node: ``node.Node`` satisfies ``RunningNode``, ``sync.folder.FolderRunner``
satisfies ``RunningFolder`` (mypy checks both where the wiring passes them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..config import Config, FolderConfig
from ..identity import DeviceID

if TYPE_CHECKING:
    from ..discovery.global_client import GlobalDiscovery
    from ..discovery.mdns import MdnsDiscovery
    from ..events import EventLog
    from ..fs.base import FileSystem
    from ..history.service import HistoryService
    from ..index.store import IndexStore
    from ..net.dialstate import DialBackoff
    from ..net.peer import PeerConnection
    from ..net.relay_service import RelayService
    from ..pending import PendingStore
    from ..scanner.scan import ScanProgress
    from ..sync.progress import PullProgress
    from ..sync.versioner import Versioner


class FolderStatusView(Protocol):
    """A folder's state as shown: what it does now, its errors and its scan."""

    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def item_errors(self) -> Mapping[str, str]: ...
    @property
    def not_synced(self) -> Mapping[str, str]: ...
    @property
    def last_scan(self) -> float: ...
    @property
    def scan_problems(self) -> Sequence[tuple[str, str]]: ...
    @property
    def conflicts(self) -> int: ...
    @property
    def initial_scan_done(self) -> bool: ...
    @property
    def scan_progress(self) -> ScanProgress | None: ...
    @property
    def selection_kept(self) -> Mapping[str, str]: ...
    @property
    def selection_kept_count(self) -> int: ...


class PullView(Protocol):
    @property
    def progress(self) -> PullProgress: ...


class RunningFolder(Protocol):
    """One running folder: its status, its files and versions, and what the user asks."""

    @property
    def config(self) -> FolderConfig: ...
    @property
    def status(self) -> FolderStatusView: ...
    @property
    def puller(self) -> PullView: ...
    @property
    def fs(self) -> FileSystem: ...
    @property
    def versioner(self) -> Versioner: ...

    def request_scan(self, paths: Sequence[str] | None = None) -> None: ...
    def confirm_deletes(self) -> None: ...
    async def override(self) -> int: ...
    async def revert(self) -> int: ...


class FolderRegistry(Protocol):
    """The folders running now, and the peers connected now (``sync.model.SyncModel``)."""

    @property
    def folders(self) -> Mapping[str, RunningFolder]: ...
    @property
    def connections(self) -> Mapping[DeviceID, PeerConnection]: ...


class ConnectionsView(Protocol):
    """The connection manager's state as shown: addresses, links, dial backoff, relays."""

    @property
    def listen_addresses(self) -> list[str]: ...
    @property
    def dial_backoff(self) -> DialBackoff: ...
    @property
    def relays(self) -> RelayService: ...

    def is_connected(self, device: DeviceID) -> bool: ...
    def is_relayed(self, device: DeviceID) -> bool: ...


class LinkService(Protocol):
    """What the API needs of the node's share links (``links.service.LinkManager``;
    typed here, not imported: the links package builds on this package's HTTP server)."""

    async def links(self, downloads: int = 20) -> dict[str, Any]: ...
    async def create(
        self,
        *,
        folder: str,
        path: str,
        expires_in: float | None,
        password: str | None,
        max_downloads: int | None,
        listen: str | None,
        public_url: str | None,
    ) -> dict[str, Any]: ...
    async def revoke(self, ref: str) -> dict[str, Any]: ...
    def listener_view(self) -> dict[str, Any]: ...
    async def store_call(self, method: str, *args: Any) -> Any: ...


class RunningNode(Protocol):
    """The node as the API and the web interface see it (``node.Node``)."""

    @property
    def home(self) -> Path: ...
    @property
    def device_id(self) -> DeviceID: ...
    @property
    def config(self) -> Config: ...
    @property
    def running_config(self) -> Config: ...
    @property
    def config_error(self) -> str: ...
    @property
    def config_lock(self) -> trio.Lock: ...
    @property
    def started_at(self) -> float: ...
    @property
    def api_address(self) -> str | None: ...
    @property
    def events(self) -> EventLog: ...
    @property
    def index(self) -> IndexStore: ...
    @property
    def pending(self) -> PendingStore: ...
    @property
    def model(self) -> FolderRegistry: ...
    @property
    def connections(self) -> ConnectionsView: ...
    @property
    def mdns(self) -> MdnsDiscovery | None: ...
    @property
    def global_discovery(self) -> GlobalDiscovery | None: ...
    @property
    def links(self) -> LinkService | None: ...
    @property
    def history(self) -> HistoryService | None: ...

    async def change_config(
        self, edit: Callable[[Config], Config], prepare: Callable[[], None] | None = None
    ) -> Config: ...

    async def reload_config(self) -> None: ...
