"""A pull round that runs out of pages goes on with what peers' index updates added
meanwhile (a peer sends a big new tree 1,000 entries at a time), instead of ending and
starting again with its pipeline drained; with deletions to apply, it still ends."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import trio
from pull_support import FOLDER, LOCAL, REMOTE_SHORT, Source, make_puller, remote_file

from p2psync.config import FolderConfig
from p2psync.events import EventLog
from p2psync.fs import BasicFS
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType
from p2psync.sync.folder import FolderRunner
from p2psync.sync.folder_build import build_folder

REMOTE = bytes(range(1, 33))


class HeldSource(Source):
    """Serves blocks from memory; requests for ``held`` wait until ``release`` is set."""

    def __init__(self, blocks: dict[bytes, bytes], held: str) -> None:
        super().__init__(blocks)
        self.held = held
        self.reached = trio.Event()
        self.release = trio.Event()

    async def request(self, folder: str, name: str, offset: int, size: int, hash: bytes) -> bytes:
        if name == self.held:
            self.reached.set()
            await self.release.wait()
        return await super().request(folder, name, offset, size, hash)


def files_named(prefix: str, count: int) -> dict[str, bytes]:
    return {f"{prefix}/f{i:03d}": os.urandom(50 + i) for i in range(count)}


def remote_directory(name: str, mode: int) -> FileInfo:
    return FileInfo(
        name=name,
        type=FileType.DIRECTORY,
        permissions=mode,
        modified_ns=1_600_000_000_000_000_000,
        version=vector.make([(REMOTE_SHORT, 1)]),
    )


def settled(index: IndexStore, folder: FolderRunner) -> bool:
    need = index.need_counts(FOLDER)
    return need.files + need.directories + need.deleted == 0 and folder.status.state == "idle"


def finished_in_first_round(events: EventLog) -> set[str]:
    names: set[str] = set()
    for e in events.since(0, limit=10_000):
        if e.type == "FolderStateChanged" and e.data["state"] == "idle":
            break
        if e.type == "ItemFinished":
            names.add(e.data["item"])
    return names


def syncing_rounds(events: EventLog) -> int:
    return sum(
        1
        for e in events.since(0, {"FolderStateChanged"}, limit=10_000)
        if e.data["state"] == "syncing"
    )


async def pull_with_update_during_round(
    fs: BasicFS,
    tmp_path: Path,
    later: list[FileInfo],
    extra_blocks: dict[str, bytes],
    done: Callable[[IndexStore, FolderRunner], bool] = settled,
) -> EventLog:
    """Node with a remote index of 300 files (more than the batches a round keeps in
    flight, so it has not run out of pages yet); while the round fetches the first one,
    ``later`` arrives as another index update; returns the event log once ``done``."""
    first = files_named("a", 300)
    data = {**first, **extra_blocks}
    source = HeldSource({hashlib.sha256(d).digest(): d for d in data.values()}, "a/f000")
    events = EventLog()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        index.update_remote(FOLDER, REMOTE, [remote_file(n, d) for n, d in first.items()])

        async def sources_for(folder: str, name: str) -> list[Source]:
            return [source]

        folder = build_folder(
            FolderConfig(id=FOLDER, path=fs.root, watcher=False, rescan_interval_s=0),
            index=index,
            local=DeviceID(LOCAL),
            db_limiter=trio.CapacityLimiter(1),
            sources_for=sources_for,
            events=events,
            fs=fs,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(folder.run)
            with trio.fail_after(30):
                await source.reached.wait()
                folder.begin_remote_update()
                await trio.to_thread.run_sync(index.update_remote, FOLDER, REMOTE, later)
                folder.end_remote_update()
                source.release.set()
                while not done(index, folder):  # noqa: ASYNC110 (state of two objects)
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    return events


def deletions_of(names: list[str]) -> list[FileInfo]:
    return [
        FileInfo(name=name, deleted=True, version=vector.make([(REMOTE_SHORT, 2)]))
        for name in names
    ]


async def test_a_round_goes_on_with_what_arrived_meanwhile(fs: BasicFS, tmp_path: Path) -> None:
    second = files_named("b", 40)
    later = [remote_file(n, d) for n, d in second.items()]

    events = await pull_with_update_during_round(fs, tmp_path, later, second)

    for name, data in second.items():
        assert (Path(fs.root) / name).read_bytes() == data
    assert syncing_rounds(events) == 1


async def test_a_directory_that_arrives_during_a_round_is_recorded_by_the_next(
    fs: BasicFS, tmp_path: Path
) -> None:
    """The round goes on after its cursor, in the files phase: the new directory is
    created as its files' parent, and its own entry (mode, mtime) is applied next."""
    second = files_named("b", 40)
    directory = remote_directory("b", 0o750)
    later = [directory, *(remote_file(n, d) for n, d in second.items())]

    events = await pull_with_update_during_round(fs, tmp_path, later, second)

    assert set(second) <= finished_in_first_round(events)
    assert syncing_rounds(events) == 2
    assert (Path(fs.root) / "b").stat().st_mode & 0o777 == 0o750


async def test_a_deletion_that_arrives_during_a_round_waits_for_the_next_one(
    fs: BasicFS, tmp_path: Path
) -> None:
    events = await pull_with_update_during_round(fs, tmp_path, deletions_of(["a/f050"]), {})

    assert not (Path(fs.root) / "a" / "f050").exists()
    assert (Path(fs.root) / "a" / "f051").exists()
    assert syncing_rounds(events) == 2


async def test_a_mass_deletion_that_arrives_during_a_round_meets_the_guard(
    fs: BasicFS, tmp_path: Path
) -> None:
    def held(index: IndexStore, folder: FolderRunner) -> bool:
        return folder.status.state == "paused"

    names = [f"a/f{i:03d}" for i in range(300)]
    await pull_with_update_during_round(fs, tmp_path, deletions_of(names), {}, done=held)

    # Files not pulled before the deletions arrived are simply no longer wanted; every
    # file that was pulled is still there.
    on_disk = [name for name in names if (Path(fs.root) / name).exists()]
    assert len(on_disk) >= 64  # at least the batch held while the deletions arrived
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        assert index.need_counts(FOLDER).deleted == len(on_disk)


async def test_an_unrecorded_directory_is_adopted_with_the_remote_mode(
    fs: BasicFS, tmp_path: Path
) -> None:
    """A directory already on disk but not in the index (the parent of files pulled
    before its own entry came) takes the remote entry as it is: no rescan, which would
    give it a local version with this device's mode."""
    (Path(fs.root) / "d" / "sub").mkdir(parents=True)
    (Path(fs.root) / "d" / "sub" / "user.txt").write_bytes(b"keep")
    entry = remote_directory("d", 0o750)
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        puller = make_puller(fs, index)
        await puller.pull_item(entry)
        puller.flush()

        recorded = index.get_local(FOLDER, "d")
        assert recorded is not None and recorded.version == entry.version
    assert (Path(fs.root) / "d").stat().st_mode & 0o777 == 0o750
    assert (Path(fs.root) / "d" / "sub" / "user.txt").read_bytes() == b"keep"
