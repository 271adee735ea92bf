"""Selective sync in a whole folder (the runner on the fake filesystem, a peer in
memory): names left out are never pulled and never count as needed; in-sync copies left
out by a narrower selection are removed without a deletion; local changes stay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import trio
from pull_support import FOLDER, LOCAL, remote_file, source_for

from p2psync.config import FolderConfig
from p2psync.events import EventLog
from p2psync.fs import FakeFS, write_all
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.scanner.scan import FLAG_NOT_SELECTED, scan
from p2psync.sync.folder import FolderRunner
from p2psync.sync.folder_build import build_folder

REMOTE = bytes(range(1, 33))
FILES = {
    "docs/a.txt": b"doc a",
    "docs/sub/b.txt": b"doc b",
    "photos/p1.jpg": b"photo one",
    "music/m1.mp3": b"music one",
}


def read(fs: FakeFS, name: str) -> bytes:
    with fs.open_read(name) as h:
        return h.read_at(0, 1 << 20)


def exists(fs: FakeFS, name: str) -> bool:
    try:
        fs.lstat(name)
    except FileNotFoundError:
        return False
    return True


@asynccontextmanager
async def running(
    tmp_path: Path,
    fs: FakeFS,
    index: IndexStore,
    files: dict[str, bytes],
    selected: tuple[str, ...],
) -> AsyncIterator[FolderRunner]:
    root = tmp_path / "folder"
    root.mkdir(exist_ok=True)
    source = source_for(files)

    async def sources_for(folder: str, name: str) -> list[object]:
        return [source]

    folder = build_folder(
        FolderConfig(
            id=FOLDER, path=str(root), watcher=False, rescan_interval_s=0, selected=selected
        ),
        index=index,
        local=DeviceID(LOCAL),
        db_limiter=trio.CapacityLimiter(1),
        sources_for=sources_for,  # type: ignore[arg-type]
        events=EventLog(),
        fs=fs,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(folder.run)
        yield folder
        nursery.cancel_scope.cancel()


async def until(check: Callable[[], bool], seconds: float = 20) -> None:
    with trio.fail_after(seconds):
        while not check():  # noqa: ASYNC110 (polls the runner)
            await trio.sleep(0.02)


def idle_with_nothing_needed(folder: FolderRunner, index: IndexStore) -> Callable[[], bool]:
    def check() -> bool:
        need = index.need_counts(FOLDER)
        return folder.status.state == "idle" and need.files + need.directories + need.deleted == 0

    return check


def _remote(files: dict[str, bytes]) -> Iterator:
    return (remote_file(n, d) for n, d in files.items())


async def test_names_left_out_are_never_pulled_and_never_needed(tmp_path: Path) -> None:
    fs = FakeFS()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        index.update_remote(FOLDER, REMOTE, list(_remote(FILES)))
        async with running(tmp_path, fs, index, FILES, ("docs",)) as folder:
            await until(lambda: exists(fs, "docs/sub/b.txt"))
            await until(idle_with_nothing_needed(folder, index))
        assert read(fs, "docs/a.txt") == b"doc a"
        assert not exists(fs, "photos") and not exists(fs, "music")
        kept = index.get_local(FOLDER, "photos/p1.jpg")
        assert kept is not None and kept.invalid and kept.local_flags & FLAG_NOT_SELECTED
        assert not kept.deleted
        # the left-out items are counted, the peer's copies stay global
        assert index.local_flagged_totals(FOLDER, FLAG_NOT_SELECTED) == (2, 18)
        glob = index.get_global(FOLDER, "photos/p1.jpg")
        assert glob is not None and not glob.invalid and not glob.deleted


async def test_narrowing_removes_in_sync_copies_and_keeps_local_changes(tmp_path: Path) -> None:
    fs = FakeFS()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        index.update_remote(FOLDER, REMOTE, list(_remote(FILES)))
        async with running(tmp_path, fs, index, FILES, ()) as folder:
            await until(lambda: all(exists(fs, n) for n in FILES))
            await until(idle_with_nothing_needed(folder, index))
            write_all(fs, "music/m1.mp3", b"changed here")  # a local change, not sent yet
            write_all(fs, "photos/new.jpg", b"only here")  # never on another device
            folder.request_scan(None)
            await until(
                lambda: (
                    (index.get_local(FOLDER, "photos/new.jpg") is not None)
                    and folder.status.state == "idle"
                )
            )
            folder.update_config(replace(folder.config, selected=("docs",)))
            await until(lambda: not exists(fs, "photos/p1.jpg"))
            await until(idle_with_nothing_needed(folder, index))
            # the status is set once the trim (in a worker thread) returns, which may
            # be after the file it removed is gone and the folder looks idle
            await until(
                lambda: set(folder.status.selection_kept) >= {"music/m1.mp3", "photos/new.jpg"}
            )
        assert read(fs, "music/m1.mp3") == b"changed here"
        assert read(fs, "photos/new.jpg") == b"only here"
        assert read(fs, "docs/a.txt") == b"doc a"
        gone = index.get_local(FOLDER, "photos/p1.jpg")
        assert gone is not None and gone.invalid and not gone.deleted  # no deletion
        assert gone.local_flags & FLAG_NOT_SELECTED
        changed = index.get_local(FOLDER, "music/m1.mp3")
        assert changed is not None and not changed.invalid  # still this device's change


async def test_selecting_again_pulls_back(tmp_path: Path) -> None:
    fs = FakeFS()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        index.update_remote(FOLDER, REMOTE, list(_remote(FILES)))
        async with running(tmp_path, fs, index, FILES, ("docs",)) as folder:
            await until(idle_with_nothing_needed(folder, index))
            assert not exists(fs, "photos/p1.jpg")
            folder.update_config(replace(folder.config, selected=("docs", "photos")))
            await until(lambda: exists(fs, "photos/p1.jpg"))
            await until(idle_with_nothing_needed(folder, index))
            assert not exists(fs, "music")
            folder.update_config(replace(folder.config, selected=()))
            await until(lambda: exists(fs, "music/m1.mp3"))
        assert read(fs, "photos/p1.jpg") == b"photo one"
        assert index.local_flagged_totals(FOLDER, FLAG_NOT_SELECTED) == (0, 0)


def test_the_scanner_announces_no_deletion_outside_the_selection() -> None:
    """A synced file outside the selection that is gone from disk is re-announced
    invalid with its version, never deleted; inside the selection it is a deletion."""
    out = remote_file("photos/p.jpg", b"p").as_local()
    inside = remote_file("docs/d.txt", b"d").as_local()

    class View:
        def get_local(self, name: str) -> object:
            return None

        def iter_local(self, prefix: str = "") -> list[object]:
            return [inside, out]

    fs = FakeFS()
    batches = list(scan(fs, View(), short_id=1, now=lambda: 1, selection=("docs",)))  # type: ignore[arg-type]
    files = {fi.name: fi for b in batches for fi in b.files}
    assert files["docs/d.txt"].deleted
    assert not files["photos/p.jpg"].deleted and files["photos/p.jpg"].invalid
    assert files["photos/p.jpg"].version == out.version
