"""A peer's items this device never stores (p2psync's own names, in any case) are refused
once and kept as "not synced here": listed with the reason, not counted as errors, not
retried until a peer sends a new version. Here a whole folder on the case-insensitive fake
filesystem, where such a name would otherwise overwrite the device's own files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import trio
from pull_support import FOLDER, LOCAL, REMOTE_SHORT, make_puller, remote_file, source_for
from test_internal_names_case import HOSTILE, assert_untouched, device_state, read

from p2psync.config import FolderConfig
from p2psync.events import EventLog
from p2psync.fs import FakeFS
from p2psync.identity import DeviceID
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.scanner.scan import FLAG_NOT_SYNCED_HERE, scan
from p2psync.sync.folder_build import build_folder


async def test_folder_keeps_refused_names_out_of_its_errors(tmp_path: Path) -> None:
    """A whole folder on the case-insensitive fake: the peer's internal names are refused
    once and listed as not synced here; the folder settles idle (no retry loop)."""
    fs = FakeFS(case_insensitive=True)
    before = device_state(fs)
    root = tmp_path / "folder"
    root.mkdir()
    files = {**HOSTILE, "ok.txt": b"an ordinary file"}
    source = source_for(files)

    async def sources_for(folder: str, name: str) -> list[object]:
        return [source]

    remote = bytes(range(1, 33))
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        index.update_remote(FOLDER, remote, [remote_file(n, d) for n, d in files.items()])
        folder = build_folder(
            FolderConfig(id=FOLDER, path=str(root), watcher=False, rescan_interval_s=0),
            index=index,
            local=DeviceID(LOCAL),
            db_limiter=trio.CapacityLimiter(1),
            sources_for=sources_for,  # type: ignore[arg-type]
            events=EventLog(),
            fs=fs,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(folder.run)
            with trio.fail_after(20):
                while folder.status.state != "idle":  # noqa: ASYNC110 (polls the runner)
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        need = index.need_counts(FOLDER)
        assert need.files + need.directories == 0
        assert set(folder.status.not_synced) == set(HOSTILE)
        assert folder.status.item_errors == {}
        kept = index.get_local(FOLDER, ".P2PIGNORE")
        assert kept is not None and kept.invalid
    assert read(fs, "ok.txt") == b"an ordinary file"
    assert (
        hashlib.sha256(read(fs, ".p2pignore")).digest()
        == hashlib.sha256(before[".p2pignore"]).digest()
    )
    assert_untouched(fs, before)


def test_a_kept_entry_missing_from_disk_is_no_deletion() -> None:
    """A refused item was never written: the scanner must not announce it deleted (that
    would delete the peer's file everywhere)."""
    kept = (
        remote_file("x" * 300, b"too long a name here")
        .with_(invalid=True)
        .as_local(local_flags=FLAG_NOT_SYNCED_HERE)
    )

    class View:
        def get_local(self, name: str) -> object:
            return kept if name == kept.name else None

        def iter_local(self, prefix: str = "") -> list[object]:
            return [kept]

    batches = list(scan(FakeFS(), View(), short_id=1, now=lambda: 1))  # type: ignore[arg-type]
    assert [fi for b in batches for fi in b.files] == []


async def test_a_kept_entry_is_pulled_once_the_filesystem_can_store_it(tmp_path: Path) -> None:
    """E.g. the folder moved to a filesystem that takes the name: the next version is
    written like a new file (not taken for a local deletion and rescanned forever)."""
    fs = FakeFS()
    data = b"version two"
    with IndexStore.open(tmp_path / "index.db", LOCAL) as index:
        v1 = remote_file("long-name.txt", b"version one")
        index.update_local(
            FOLDER, [v1.with_(invalid=True).as_local(local_flags=FLAG_NOT_SYNCED_HERE)]
        )
        puller = make_puller(fs, index, source_for({"long-name.txt": data}))
        v2 = remote_file("long-name.txt", data).with_(version=vector.make([(REMOTE_SHORT, 2)]))
        await puller.pull_item(v2)
        puller.flush()
    assert read(fs, "long-name.txt") == data
