"""The sync model: joins folder runners and peer connections.

Per connection it sends our ClusterConfig, reads the peer's, works out which index data
each side lacks (index IDs + sequences, like BEP's delta indexes), streams our index in
sequence order in bounded batches as it grows, stores what the peer sends, and routes
block requests to the folder that owns them. Offers of folders we do not share become
pending folders.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import trio

from ..config import Config
from ..endpoints import explicit_addresses
from ..errors import ConfigError
from ..events import EventLog
from ..identity import DeviceID
from ..index.store import IndexStore
from ..net.peer import PeerConnection
from ..pending import PendingFolder, PendingStore
from ..protocol import vector
from ..protocol.fileinfo import FileInfo, LocalFileInfo
from ..protocol.messages import (
    ClusterConfig,
    DownloadProgress,
    ErrorCode,
    Folder,
    FolderDevice,
    Index,
    IndexUpdate,
    Message,
    Request,
    Response,
)
from ..resource_faults import RESOURCE_ERRORS, describe
from ..values import DYNAMIC
from .folder import FolderRunner
from .introductions import introduce
from .overrides import FLAG_RECEIVE_ONLY
from .pull import BlockSource

# Saves and applies an edit of the config (``Node.change_config``).
ConfigChange = Callable[[Callable[[Config], Config]], Awaitable[Config]]

log = logging.getLogger("p2psync.sync.model")

INDEX_BATCH_FILES = 1000
INDEX_COALESCE = 0.01  # seconds; small enough for sub-0.25 s end-to-end latency


class SyncModel:
    def __init__(
        self,
        *,
        local: DeviceID,
        get_config: Callable[[], Config],
        index: IndexStore,
        db_limiter: trio.CapacityLimiter,
        pending: PendingStore,
        events: EventLog,
        change_config: ConfigChange | None = None,
    ) -> None:
        self.local = local
        self.get_config = get_config
        self.change_config = change_config  # saves and applies a config edit (introductions)
        self.index = index
        self.limiter = db_limiter
        self.pending = pending
        self.events = events
        self.folders: dict[str, FolderRunner] = {}
        self.connections: dict[DeviceID, PeerConnection] = {}
        self.sessions: dict[DeviceID, _PeerSession] = {}

    async def _db(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # ---- who shares what -----------------------------------------------------------
    def shared_with(self, folder_id: str, device: DeviceID) -> bool:
        cfg = self.get_config().folder(folder_id)
        return cfg is not None and device in cfg.devices and folder_id in self.folders

    async def sources_for(self, folder_id: str, name: str) -> list[PeerConnection]:
        """Connected peers that hold the global version of ``name`` (for the puller)."""
        holders = set(await self._db(self.index.devices_with_global, folder_id, name))
        return [
            peer
            for device, peer in self.connections.items()
            if device.raw in holders and not peer.closed and self.shared_with(folder_id, device)
        ]

    async def sources_for_many(
        self, folder_id: str, names: list[str]
    ) -> dict[str, Sequence[BlockSource]]:
        """``sources_for`` of many names, with one index lookup (thread hop) for all."""
        holders = await self._db(self.index.devices_with_global_many, folder_id, names)
        peers = {
            device.raw: peer
            for device, peer in self.connections.items()
            if not peer.closed and self.shared_with(folder_id, device)
        }
        return {
            name: [peers[d] for d in devices if d in peers] for name, devices in holders.items()
        }

    async def cluster_config_for(self, device: DeviceID) -> ClusterConfig:
        cfg = self.get_config()
        folders = []
        for fc in cfg.folders:
            if device not in fc.devices or fc.id not in self.folders:
                continue
            ours = FolderDevice(
                id=self.local.raw,
                name=cfg.name,
                index_id=await self._db(self.index.local_index_id, fc.id),
                max_sequence=await self._db(self.index.max_sequence, fc.id, self.local.raw),
            )
            theirs = FolderDevice(
                id=device.raw,
                index_id=await self._db(self.index.index_id, fc.id, device.raw),
                max_sequence=await self._db(self.index.max_sequence, fc.id, device.raw),
            )
            # Every other device sharing the folder too, as BEP does: what lets the
            # recipient take us as its introducer.
            others = [
                await self._folder_device(cfg, fc.id, other)
                for other in fc.devices
                if other not in (device, self.local) and cfg.device(other) is not None
            ]
            folders.append(
                Folder(
                    id=fc.id,
                    label=fc.label,
                    type=fc.type.wire,
                    paused=fc.paused,
                    devices=(ours, theirs, *others),
                )
            )
        return ClusterConfig(folders=tuple(folders))

    async def _folder_device(self, cfg: Config, folder_id: str, device: DeviceID) -> FolderDevice:
        dc = cfg.device(device)
        assert dc is not None
        raw = dc.id.raw
        return FolderDevice(
            id=raw,
            name=dc.name,
            addresses=tuple(str(a) for a in explicit_addresses(dc.addresses)[:16]) or (DYNAMIC,),
            introducer=dc.introducer,
            index_id=await self._db(self.index.index_id, folder_id, raw),
            max_sequence=await self._db(self.index.max_sequence, folder_id, raw),
        )

    async def resend_cluster_config(self, device: DeviceID) -> None:
        """Sharing with ``device`` changed: tell it (a later ClusterConfig updates the first)."""
        peer = self.connections.get(device)
        session = self.sessions.get(device)
        if peer is None or peer.closed or session is None:
            return
        last = session.last_cluster_config
        if last is not None:
            # Take the peer's index IDs for folders we now share before it hears from
            # us: an index it sends in answer to our ClusterConfig is then never dropped
            # as a "reset" when its offer is read again below.
            await session.adopt_index_ids(last)
        try:
            await peer.send(await self.cluster_config_for(device))
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            # Closed meanwhile: the config change that called us stands, and the next
            # connection starts with a fresh ClusterConfig anyway.
            log.info("%s: connection closed before the new sharing reached it (%s)",
                     device.short_str(), exc)  # fmt: skip
            return
        if last is not None:
            # The peer may have offered folders we only now share: read its offer again.
            await session.handle_message(peer, last)

    async def announce_index_reset(self, folder_id: str) -> None:
        """This device's index of ``folder_id`` was reset (new index ID): tell every
        connected device sharing it, which then drops our old entries and takes the
        full new index (``_on_cluster_config`` restarts our sender from zero)."""
        for device in list(self.connections):
            if self.shared_with(folder_id, device):
                await self.resend_cluster_config(device)

    # ---- a connection's life -------------------------------------------------------
    async def serve_peer(self, peer: PeerConnection) -> None:
        """Run one authenticated connection until it closes."""
        old = self.connections.get(peer.device_id)
        if old is not None and not old.closed:
            await old.close("replaced by a newer connection")
        session = _PeerSession(self, peer)
        try:
            async with trio.open_nursery() as nursery:
                session.nursery = nursery
                try:
                    await peer.send(await self.cluster_config_for(peer.device_id))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                except RESOURCE_ERRORS as exc:  # e.g. no file handle for an index reader
                    await session._close_for(exc, "reading our ClusterConfig")
                    return
                # Only now may pullers use it: the protocol allows no Request before our
                # ClusterConfig (and a refused send would end the connection).
                self.connections[peer.device_id] = peer
                self.sessions[peer.device_id] = session
                self.events.emit(
                    "DeviceConnected", device=str(peer.device_id), address=peer.address
                )
                await peer.run(session)
                nursery.cancel_scope.cancel()
        finally:
            if self.connections.get(peer.device_id) is peer:
                del self.connections[peer.device_id]
                self.events.emit(
                    "DeviceDisconnected", device=str(peer.device_id), reason=peer.close_reason
                )
            if self.sessions.get(peer.device_id) is session:
                del self.sessions[peer.device_id]


class _PeerSession:
    """The model's side of one connection (implements net.peer.PeerHandler)."""

    def __init__(self, model: SyncModel, peer: PeerConnection) -> None:
        self.model = model
        self.peer = peer
        self.device = peer.device_id
        self.nursery: trio.Nursery | None = None
        self.senders: dict[str, trio.CancelScope] = {}
        self.announced: set[str] = set()  # folders the peer shares with us
        self.last_cluster_config: ClusterConfig | None = None
        self._cc_lock = trio.Lock()

    async def handle_message(self, peer: PeerConnection, message: Message) -> None:
        try:
            if isinstance(message, ClusterConfig):
                await self._on_cluster_config(message)
            elif isinstance(message, Index | IndexUpdate):
                await self._on_index(message)
            elif isinstance(message, DownloadProgress):
                pass  # we do not fetch from temporary files
        except RESOURCE_ERRORS as exc:  # e.g. the index cannot be written: a full disk
            await self._close_for(exc, f"storing its {type(message).__name__}")

    async def _close_for(self, exc: Exception, doing: str) -> None:
        """End this connection (not the daemon) over a local fault; the peer resends what
        we could not take once it reconnects."""
        log.error(
            "%s: %s failed (%s); closing the connection",
            self.device.short_str(),
            doing,
            describe(exc),
        )
        await self.peer.close(f"local error: {describe(exc)}")

    async def handle_requests(
        self, peer: PeerConnection, requests: Sequence[Request]
    ) -> list[Response]:
        by_folder: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_folder.setdefault(request.folder, []).append(i)
        responses: list[Response | None] = [None] * len(requests)
        for folder, positions in by_folder.items():
            runner = self.model.folders.get(folder)
            asked = [requests[i] for i in positions]
            if runner is None or not self.model.shared_with(folder, self.device):
                log.warning(
                    "%s requested %r from unshared folder %r",
                    self.device.short_str(),
                    asked[0].name,
                    folder,
                )
                answers = [Response(id=r.id, code=ErrorCode.NO_SUCH_FILE) for r in asked]
            else:
                answers = await runner.serve_requests(asked)
            for i, answer in zip(positions, answers, strict=True):
                responses[i] = answer
        return [r for r in responses if r is not None]

    # ---- ClusterConfig -------------------------------------------------------------
    async def _on_cluster_config(self, cc: ClusterConfig) -> None:
        """One ClusterConfig at a time: the peer's (from the reader) and its replay when
        we start sharing (``SyncModel.resend_cluster_config``) never interleave, so an
        index stored in between is not dropped as "reset"."""
        self._take_introductions(cc)
        async with self._cc_lock:
            await self._apply_cluster_config(cc)

    def _take_introductions(self, cc: ClusterConfig) -> None:
        """An introducer's ClusterConfig may add devices and shares (``introductions``).
        Applied in a task of its own: a ClusterConfig replayed while a config change is
        being applied must not wait for that change's lock."""
        model = self.model
        dc = model.get_config().device(self.device)
        if dc is None or not dc.introducer or model.change_config is None:
            return
        if introduce(model.get_config(), self.device, cc, model.local) == model.get_config():
            return
        assert self.nursery is not None
        self.nursery.start_soon(self._introduce, cc)

    async def _introduce(self, cc: ClusterConfig) -> None:
        model = self.model
        assert model.change_config is not None
        try:
            await model.change_config(lambda cfg: introduce(cfg, self.device, cc, model.local))
        except ConfigError as exc:  # config.toml is invalid on disk: the user fixes it first
            log.warning("not taking %s's introductions: %s", self.device.short_str(), exc)
            return
        log.info("%s (introducer) changed the devices this node trusts", self.device.short_str())

    async def _apply_cluster_config(self, cc: ClusterConfig) -> None:
        first = self.last_cluster_config is None
        shared_before = set(self.announced)
        self.last_cluster_config = cc
        model = self.model
        for folder in cc.folders:
            if not model.shared_with(folder.id, self.device):
                our_folder = model.get_config().folder(folder.id)
                if our_folder is None or self.device not in our_folder.devices:
                    await trio.to_thread.run_sync(
                        model.pending.try_add_folder,
                        PendingFolder(folder.id, folder.label, str(self.device), time.time()),
                    )
                    model.events.emit(
                        "FolderOffered",
                        folder=folder.id,
                        label=folder.label,
                        device=str(self.device),
                    )
                continue
            self.announced.add(folder.id)
            ours = next((d for d in folder.devices if d.id == model.local.raw), None)
            await self._adopt_index_id(folder)
            our_index_id = await model._db(model.index.local_index_id, folder.id)
            our_max = await model._db(model.index.max_sequence, folder.id, model.local.raw)
            if ours is not None and ours.index_id == our_index_id and ours.max_sequence <= our_max:
                start, full = ours.max_sequence, False
            else:
                start, full = 0, True
            if folder.id in self.senders:
                self.senders.pop(folder.id).cancel()
            assert self.nursery is not None
            await self.nursery.start(self._send_index, folder.id, start, full)
        for folder_id in list(self.senders):
            if folder_id not in {f.id for f in cc.folders}:
                self.senders.pop(folder_id).cancel()
        for folder_id in self.announced:
            runner = model.folders.get(folder_id)
            if runner is not None:
                runner.request_pull()
        if not first and self.announced - shared_before:
            # The peer now shares a folder it only had on offer (it accepted ours): send
            # our ClusterConfig again, so it sees the folder's other devices now that it
            # shares the folder (Syncthing takes an introducer's devices only then).
            try:
                await self.peer.send(await model.cluster_config_for(self.device))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the connection ended; the reader reports why

    async def adopt_index_ids(self, cc: ClusterConfig) -> None:
        """Record the index IDs ``cc`` gives for the folders we share with the peer."""
        async with self._cc_lock:
            for folder in cc.folders:
                if self.model.shared_with(folder.id, self.device):
                    await self._adopt_index_id(folder)

    async def _adopt_index_id(self, folder: Folder) -> None:
        """A new index ID for the peer's index of ``folder`` means its index was reset:
        drop what we hold of it and expect a full index."""
        model = self.model
        theirs = next((d for d in folder.devices if d.id == self.device.raw), None)
        if theirs is None:
            return
        stored = await model._db(model.index.index_id, folder.id, self.device.raw)
        if theirs.index_id == stored:
            return
        log.info(
            "%s: index of %s reset (index ID changed); expecting a full index",
            folder.id,
            self.device.short_str(),
        )
        await model._db(model.index.drop_device, folder.id, self.device.raw)
        await model._db(model.index.set_index_id, folder.id, self.device.raw, theirs.index_id)

    # ---- receiving an index --------------------------------------------------------
    async def _on_index(self, message: Index | IndexUpdate) -> None:
        model = self.model
        async with self._cc_lock:
            pass  # a ClusterConfig being applied (a replay from another task) goes first
        offered = self.last_cluster_config
        if (
            message.folder not in self.announced
            and model.shared_with(message.folder, self.device)
            and offered is not None
            and any(f.id == message.folder for f in offered.folders)
        ):
            # We began sharing a folder this peer offered (accepted just now) and its index
            # came before the replay of its offer: take the offer first, then the index.
            await self._on_cluster_config(offered)
        if (
            not model.shared_with(message.folder, self.device)
            or message.folder not in self.announced
        ):
            log.warning(
                "%s sent an index for folder %r it does not share with us; ignored",
                self.device.short_str(),
                message.folder,
            )
            return
        files = list(message.files)
        runner = model.folders.get(message.folder)
        if runner is not None:
            for entry in message.unsupported:  # only a BEP peer can send these
                runner.note_not_synced(
                    entry.name, f"from {self.device.short_str()}: {entry.reason}"
                )
        if runner is not None:
            runner.begin_remote_update()
        try:
            if isinstance(message, Index):
                await model._db(model.index.replace_remote, message.folder, self.device.raw, files)
            else:
                await model._db(model.index.update_remote, message.folder, self.device.raw, files)
        finally:
            if runner is not None:
                runner.end_remote_update()
        model.events.emit(
            "RemoteIndexUpdated",
            folder=message.folder,
            device=str(self.device),
            items=len(files),
            deleted=sum(1 for f in files if f.deleted),
        )

    # ---- sending our index ---------------------------------------------------------
    async def _send_index(
        self,
        folder_id: str,
        start: int,
        full: bool,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            await self._send_index_loop(folder_id, start, full, task_status=task_status)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection ended; the reader reports why
        except RESOURCE_ERRORS as exc:  # e.g. out of file handles reading the index
            await self._close_for(exc, f"sending the index of {folder_id!r}")

    async def _send_index_loop(
        self, folder_id: str, start: int, full: bool, *, task_status: trio.TaskStatus[None]
    ) -> None:
        runner = self.model.folders[folder_id]
        with trio.CancelScope() as scope:
            self.senders[folder_id] = scope
            task_status.started()
            sequence, first = start, full
            while True:
                batches = await self.model._db(_take_batches, self.model.index, folder_id, sequence)
                for batch in batches:
                    wire = [_for_wire(fi) for fi in batch]
                    last = batch[-1].sequence
                    if first:
                        await self.peer.send(
                            Index(folder=folder_id, files=tuple(wire), last_sequence=last)
                        )
                        first = False
                    else:
                        await self.peer.send(
                            IndexUpdate(
                                folder=folder_id,
                                files=tuple(wire),
                                prev_sequence=sequence,
                                last_sequence=last,
                            )
                        )
                    sequence = last
                if first:
                    # A full send with nothing in it: an empty Index still resets the peer's view.
                    await self.peer.send(Index(folder=folder_id, files=(), last_sequence=sequence))
                    first = False
                if not batches or len(batches[-1]) < INDEX_BATCH_FILES:
                    await runner.local_sequence.wait_above(sequence)
                    # Let a burst of local changes gather into one IndexUpdate.
                    await trio.sleep(INDEX_COALESCE)


def _take_batches(
    index: IndexStore, folder: str, sequence: int, max_batches: int = 4
) -> list[list[LocalFileInfo]]:
    return list(
        itertools.islice(index.iter_local_since(folder, sequence, INDEX_BATCH_FILES), max_batches)
    )


def _for_wire(fi: LocalFileInfo) -> FileInfo:
    """What peers may see of a local entry: no local bookkeeping; receive-only local
    changes go out invalid with an empty version so they can never win."""
    if fi.local_flags & FLAG_RECEIVE_ONLY:
        return fi.as_file_info().with_(invalid=True, version=vector.EMPTY)
    return fi.as_file_info()
