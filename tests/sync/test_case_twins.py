"""A peer's ``Foo.txt`` on a case-insensitive filesystem that already holds ``foo.txt``:
one file for both names. The local file is kept, the item is an error that says so and is
retried with backoff, not a rescan-and-pull loop (before: ~50 attempts a second)."""

from __future__ import annotations

from pathlib import Path

import trio
from pull_support import FOLDER, LOCAL, remote_file, source_for

from p2psync.config import FolderConfig
from p2psync.events import EventLog
from p2psync.fs import FakeFS, write_all
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.sync.folder_build import build_folder

REMOTE = bytes(range(1, 33))


async def test_a_case_twin_from_a_peer_is_a_conflict_not_a_loop(tmp_path: Path) -> None:
    fs = FakeFS(case_insensitive=True)
    write_all(fs, "foo.txt", b"local content")
    files = {"Foo.txt": b"the peer's content"}
    source = source_for(files)

    async def sources_for(folder: str, name: str) -> list[object]:
        return [source]

    root = tmp_path / "folder"
    root.mkdir()
    events = EventLog()
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        folder = build_folder(
            FolderConfig(id=FOLDER, path=str(root), watcher=False, rescan_interval_s=0),
            index=index,
            local=DeviceID(LOCAL),
            db_limiter=trio.CapacityLimiter(1),
            sources_for=sources_for,  # type: ignore[arg-type]
            events=events,
            fs=fs,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(folder.run)
            with trio.fail_after(20):
                while index.get_local(FOLDER, "foo.txt") is None:  # noqa: ASYNC110 (polls)
                    await trio.sleep(0.02)
                index.update_remote(FOLDER, REMOTE, [remote_file(n, d) for n, d in files.items()])
                folder.request_pull()
                while folder.status.state != "error":  # noqa: ASYNC110 (polls the runner)
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    assert "case conflict" in folder.status.item_errors["Foo.txt"], folder.status.item_errors
    attempts = [e for e in events.since(0, {"ItemFinished"}) if e.data["item"] == "Foo.txt"]
    assert len(attempts) <= 2, len(attempts)
    with fs.open_read("foo.txt") as h:
        assert h.read_at(0, 100) == b"local content"
    assert [e.name for e in fs.scandir("") if e.name != ".p2psync"] == ["foo.txt"]
