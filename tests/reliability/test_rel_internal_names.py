"""A trusted peer announcing items this device never stores, against a real node on the
real filesystem: p2psync's own names in another case (``.P2PIGNORE`` holding ``*``,
``.P2PVERSIONS/planted.txt``, a temp-file name) and a name this filesystem cannot hold
(a 300-byte name: valid for the peer's OS, too long here). Nothing is written, the folder
does not go into an error state that retries forever, and each refused item is listed as
"not synced here" until a new version comes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from hostile_peer import HostilePeer, file_info, trust_hostile
from nodes import FOLDER, Cluster
from nodes import wait_for as _wait_for

from p2psync.api.views import folder_view
from p2psync.protocol.messages import Index, IndexUpdate, Request
from p2psync.wiring import Node

REFUSED = {
    ".P2PIGNORE": b"*\n",
    ".P2PVERSIONS/planted.txt": b"planted in the versions archive",
    "sub/.P2PSYNC.evil.TMP": b"looks like a temp file",
}


async def wait_for(check: Callable[[], object], what: str) -> None:
    await _wait_for(check, timeout=20.0, what=what)


def block_server(files: dict[str, bytes]) -> Callable[[Request], bytes | None]:
    def serve(req: Request) -> bytes | None:
        data = files.get(req.name)
        return None if data is None else data[req.offset : req.offset + req.size]

    return serve


@asynccontextmanager
async def node_with_hostile(tmp_path: Path) -> AsyncIterator[tuple[Cluster, Node, HostilePeer]]:
    c = Cluster(tmp_path, ["a"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)
        node = c.nodes["a"]
        hostile = HostilePeer()
        await trust_hostile(node, FOLDER, hostile.identity)
        await wait_for(lambda: c.runner("a").status.state == "idle", what="folder idle")
        await hostile.connect(node, FOLDER)
        try:
            yield c, node, hostile
        finally:
            await hostile.aclose()
            nursery.cancel_scope.cancel()


def finished(node: Node, name: str) -> int:
    """How many times the folder finished (or gave up on) ``name``: one per attempt."""
    events = node.events.since(0, {"ItemFinished"}, limit=100_000)
    return sum(1 for e in events if e.data["item"] == name)


async def test_internal_names_in_another_case_are_refused_once(tmp_path: Path, outcomes) -> None:
    files = {**REFUSED, "ok.txt": b"an ordinary file", "sub/fine.txt": b"another one"}
    async with node_with_hostile(tmp_path) as (c, node, hostile), trio.open_nursery() as n:
        n.start_soon(hostile.serve, block_server(files))
        infos = tuple(
            file_info(name, data, short_id=hostile.short_id, seq=i + 1)
            for i, (name, data) in enumerate(sorted(files.items()))
        )
        await hostile.send(Index(folder=FOLDER, files=infos, last_sequence=len(infos)))
        runner, data = c.runner("a"), c.data("a")
        await wait_for(
            lambda: (data / "ok.txt").exists() and (data / "sub/fine.txt").exists(),
            what="the ordinary files arrive",
        )
        await wait_for(lambda: runner.status.state == "idle", what="folder idle again")

        # nothing of the refused names reached the disk, in any case
        on_disk = {p.relative_to(data).as_posix() for p in data.rglob("*")}
        assert not {n.casefold() for n in on_disk} & {
            ".p2pignore",
            ".p2pversions",
            ".p2pversions/planted.txt",
            "sub/.p2psync.evil.tmp",
        }, on_disk
        # not an error retried forever: kept as "not synced here" with the reason
        assert runner.status.item_errors == {}
        assert set(runner.status.not_synced) == set(REFUSED)
        assert all("p2psync's own names" in r for r in runner.status.not_synced.values())
        need = node.index.need_counts(FOLDER)
        assert need.files + need.directories + need.deleted == 0
        fc = node.config.folder(FOLDER)
        assert fc is not None
        view = await folder_view(node, fc, trio.CapacityLimiter(1))
        assert view["state"] == "idle" and view["in_sync"], view
        assert {e["name"] for e in view["not_synced"]} == set(REFUSED)

        # a later pull round does not try them again
        attempts = {name: finished(node, name) for name in REFUSED}
        assert attempts == dict.fromkeys(REFUSED, 1)
        later = os.urandom(1000)
        files["later.txt"] = later
        await hostile.send(
            IndexUpdate(
                folder=FOLDER,
                prev_sequence=len(infos),
                last_sequence=len(infos) + 1,
                files=(
                    file_info("later.txt", later, short_id=hostile.short_id, seq=len(infos) + 1),
                ),
            )
        )
        await wait_for(lambda: (data / "later.txt").exists(), what="a later file arrives")
        await wait_for(lambda: runner.status.state == "idle", what="folder idle again")
        assert {name: finished(node, name) for name in REFUSED} == attempts

        # a new version of a refused item is refused again, once
        files[".P2PIGNORE"] = b"*\n# v2\n"
        seq = len(infos) + 2
        await hostile.send(
            IndexUpdate(
                folder=FOLDER,
                prev_sequence=seq - 1,
                last_sequence=seq,
                files=(
                    file_info(
                        ".P2PIGNORE",
                        files[".P2PIGNORE"],
                        short_id=hostile.short_id,
                        version=2,
                        seq=seq,
                    ),
                ),
            )
        )
        await wait_for(lambda: finished(node, ".P2PIGNORE") == 2, what="v2 refused")
        await wait_for(lambda: runner.status.state == "idle", what="folder idle again")
        assert not (data / ".P2PIGNORE").exists()
        assert (
            hashlib.sha256(later).digest()
            == hashlib.sha256((data / "later.txt").read_bytes()).digest()
        )
        n.cancel_scope.cancel()
    outcomes.record(
        "peer",
        "index with own names in another case (.P2PIGNORE '*', .P2PVERSIONS/x, temp name)",
        "refused once, kept as not synced here, folder idle",
        trials=len(REFUSED) + 1,
        detail="1 attempt each across 2 rounds; a new version refused once more; later files synced"
        "; same on FakeFS(case_insensitive=True): tests/sync/test_not_synced_here.py",
    )


async def test_a_name_this_filesystem_cannot_store_is_kept_not_synced(
    tmp_path: Path, outcomes
) -> None:
    long_name = "x" * 300 + ".txt"  # ext4, tmpfs, APFS, NTFS: at most 255 per name
    files = {long_name: b"from a filesystem with longer names", "ok.txt": b"fine"}
    async with node_with_hostile(tmp_path) as (c, node, hostile), trio.open_nursery() as n:
        n.start_soon(hostile.serve, block_server(files))
        infos = tuple(
            file_info(name, data, short_id=hostile.short_id, seq=i + 1)
            for i, (name, data) in enumerate(sorted(files.items()))
        )
        await hostile.send(Index(folder=FOLDER, files=infos, last_sequence=len(infos)))
        runner, data = c.runner("a"), c.data("a")
        await wait_for(lambda: (data / "ok.txt").exists(), what="the ordinary file arrives")
        await wait_for(lambda: runner.status.state == "idle", what="folder idle again")
        assert runner.status.item_errors == {}
        assert "cannot store the name" in runner.status.not_synced[long_name]
        need = node.index.need_counts(FOLDER)
        assert need.files == 0
        assert finished(node, long_name) == 1
        # a full scan does not take the never-written file for a local deletion
        scans = len(node.events.since(0, {"ScanCompleted", "LocalIndexUpdated"}, limit=10_000))
        c.scan("a")
        await wait_for(
            lambda: (
                len(node.events.since(0, {"ScanCompleted", "LocalIndexUpdated"}, limit=10_000))
                > scans
            ),
            what="a scan",
        )
        kept = node.index.get_local(FOLDER, long_name)
        assert kept is not None and kept.invalid and not kept.deleted, kept
        n.cancel_scope.cancel()
    outcomes.record(
        "peer",
        "file name longer than this filesystem allows (300 bytes)",
        "kept as not synced here, folder idle",
        detail="1 attempt, then not needed until a new version",
    )
