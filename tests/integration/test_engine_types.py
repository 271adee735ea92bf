"""Folder types (send-only, receive-only), override and revert, the mass-delete guard and
versioning, between two in-process devices on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from nodes import FOLDER, Cluster, tree_digest
from nodes import wait_for as _wait_for

from p2psync.config import VersioningConfig, load_config, save_config
from p2psync.fs.basic import BasicFS
from p2psync.protocol.fileinfo import FileInfo, LocalFileInfo
from p2psync.sync.versioner import list_versions


async def wait_for(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:  # noqa: ASYNC109
    """nodes.wait_for, where a path vanishing under a check (a rename racing it) means "not yet"."""
    await _wait_for(lambda: _safe(check), timeout=timeout, what=what)


def _safe(check: Callable[[], object]) -> object:
    try:
        return check()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def remote_entry(c: Cluster, on: str, of: str, name: str):
    """What node ``on`` holds in its index about ``name`` as announced by node ``of``."""
    return c.nodes[on].index.get(FOLDER, c.nodes[of].device_id.raw, name)


def local_entry(c: Cluster, on: str, name: str):
    return c.nodes[on].index.get_local(FOLDER, name)


def has_received(
    c: Cluster, on: str, of: str, name: str, changed: Callable[[LocalFileInfo], bool]
) -> bool:
    """``of`` has recorded the change (``changed`` holds for its local entry) and ``on``
    holds exactly that entry of ``of`` (the index update arrived)."""
    theirs, ours = local_entry(c, of, name), remote_entry(c, on, of, name)
    return (
        theirs is not None
        and changed(theirs)
        and ours is not None
        and ours.sequence == theirs.sequence
    )


def by_local_device(c: Cluster, name: str) -> Callable[[FileInfo], bool]:
    short = c.nodes[name].device_id.short_id
    return lambda fi: fi.modified_by == short and not fi.deleted


def deleted(fi: FileInfo) -> bool:
    return fi.deleted


async def started(tmp_path: Path, nursery: trio.Nursery, types: dict[str, str]) -> Cluster:
    c = Cluster(tmp_path, ["a", "b"], folder_type=types)
    await c.start_all(nursery)
    await wait_for(lambda: c.connected("a", "b") and c.connected("b", "a"), what="connection")
    return c


async def test_send_only_sends_but_ignores_remote_changes_until_override(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        c = await started(tmp_path, nursery, {"a": "sendonly"})
        a, b = c.data("a"), c.data("b")
        (a / "doc.txt").write_text("master copy")
        c.scan("a")
        await wait_for(lambda: (b / "doc.txt").exists() and c.in_sync(), what="a's change is sent")

        (b / "doc.txt").write_text("edited on b")
        (b / "new-on-b.txt").write_text("b adds a file")
        c.scan("b")
        by_b = by_local_device(c, "b")
        await wait_for(
            lambda: (
                has_received(c, "a", "b", "doc.txt", by_b)
                and has_received(c, "a", "b", "new-on-b.txt", by_b)
            ),
            what="a got b's index",
        )
        await wait_for(lambda: c.runner("a").status.state == "idle", what="a idle")
        assert (a / "doc.txt").read_text() == "master copy", "send-only applied a remote edit"
        assert not (a / "new-on-b.txt").exists()

        await c.runner("a").override()
        await wait_for(
            lambda: (
                (b / "doc.txt").read_text() == "master copy" and not (b / "new-on-b.txt").exists()
            ),
            what="override restores a's state",
        )
        assert tree_digest(b) == tree_digest(a)
        nursery.cancel_scope.cancel()


async def test_receive_only_never_sends_local_changes_and_revert_restores(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        c = await started(tmp_path, nursery, {"b": "receiveonly"})
        a, b = c.data("a"), c.data("b")
        (a / "doc.txt").write_text("cluster version")
        (a / "other.txt").write_text("will be deleted locally on b")
        c.scan("a")
        await wait_for(lambda: (b / "other.txt").exists() and c.in_sync(), what="a -> b")

        (b / "doc.txt").write_text("local edit on receive-only b")
        (b / "other.txt").unlink()
        c.scan("b")
        flagged = lambda fi: bool(fi.local_flags)  # noqa: E731
        await wait_for(
            lambda: (
                has_received(c, "a", "b", "doc.txt", flagged)
                and has_received(c, "a", "b", "other.txt", flagged)
            ),
            what="a got b's index",
        )
        await wait_for(lambda: c.runner("a").status.state == "idle", what="a idle")
        assert (b / "doc.txt").read_text() == "local edit on receive-only b"
        assert not (b / "other.txt").exists()
        assert (a / "doc.txt").read_text() == "cluster version", "a receive-only change was applied"
        assert (a / "other.txt").exists(), "a receive-only delete was applied"

        reverted = await c.runner("b").revert()
        assert reverted == 2
        await wait_for(
            lambda: (
                (b / "doc.txt").read_text() == "cluster version"
                and (b / "other.txt").exists()
                and c.in_sync()
            ),
            what="revert",
        )
        # and b keeps receiving afterwards
        (a / "doc.txt").write_text("newer cluster version")
        c.scan("a")
        await wait_for(lambda: (b / "doc.txt").read_text() == "newer cluster version", what="later")
        nursery.cancel_scope.cancel()


async def test_mass_delete_pauses_until_confirmed(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        c = await started(tmp_path, nursery, {})
        a, b = c.data("a"), c.data("b")
        for i in range(120):
            (a / f"f{i:03}.txt").write_text(f"file {i}")
        c.scan("a")
        await wait_for(
            lambda: len(tree_digest(b)) == 120 and c.in_sync(), timeout=30, what="120 files on b"
        )

        for i in range(70):
            (a / f"f{i:03}.txt").unlink()
        c.scan("a")
        runner = c.runner("b")
        await wait_for(
            lambda: all(has_received(c, "b", "a", f"f{i:03}.txt", deleted) for i in range(70)),
            what="b got all deletions",
        )
        await wait_for(lambda: runner.status.state == "paused", what="b pauses")
        assert "confirm" in runner.status.reason, runner.status.reason
        assert len(tree_digest(b)) == 120, "files were deleted before the user confirmed"

        runner.confirm_deletes()
        await wait_for(lambda: len(tree_digest(b)) == 50 and c.in_sync(), what="deletes applied")
        await wait_for(lambda: runner.status.state == "idle", what="b resumes")
        nursery.cancel_scope.cancel()


async def restart_with_versioning(
    c: Cluster, nursery: trio.Nursery, name: str, versioning: VersioningConfig
) -> None:
    await c.stop(name)
    cfg = load_config(c.homes[name])
    folder = replace(cfg.folder(FOLDER), versioning=versioning)
    save_config(cfg.with_folder(folder), c.homes[name])
    await c.start(nursery, name)
    await wait_for(lambda: c.connected("a", name) and c.connected(name, "a"), what="reconnect")


async def next_second() -> None:
    """Archive tags have one-second resolution: wait (with a deadline) for the next second."""
    now = int(time.time())
    await wait_for(lambda: int(time.time()) > now, timeout=3, what="the next second")


@pytest.mark.parametrize("kind", ["simple", "trashcan", "staggered"])
async def test_versioning_archives_remote_change_and_delete(tmp_path: Path, kind: str) -> None:
    async with trio.open_nursery() as nursery:
        c = await started(tmp_path, nursery, {})
        a, b = c.data("a"), c.data("b")
        (a / "d").mkdir()
        (a / "d" / "v.txt").write_text("version 1")
        c.scan("a")
        await wait_for(lambda: (b / "d" / "v.txt").exists() and c.in_sync(), what="v1")
        await restart_with_versioning(c, nursery, "b", VersioningConfig(type=kind, keep=2))
        fs = BasicFS(b)

        (a / "d" / "v.txt").write_text("version 2")
        c.scan("a")
        await wait_for(lambda: (b / "d" / "v.txt").read_text() == "version 2", what="v2")
        versions = list_versions(fs, "d/v.txt")
        assert [(b / v.archive_name).read_text() for v in versions] == ["version 1"]
        assert all(v.archive_name.startswith(".p2pversions/d/") for v in versions)

        await next_second()
        (a / "d" / "v.txt").unlink()
        c.scan("a")
        # trashcan keeps the last copy per name; staggered keeps the oldest copy of each
        # 30 s slot (Syncthing's rule), so version 2, archived a second later, is thinned.
        expected = {
            "trashcan": ["version 2"],
            "simple": ["version 1", "version 2"],
            "staggered": ["version 1"],
        }[kind]

        def contents() -> list[str]:
            return sorted((b / v.archive_name).read_text() for v in list_versions(fs, "d/v.txt"))

        # the file leaves its place (archived) a moment before the versions are thinned
        await wait_for(
            lambda: not (b / "d" / "v.txt").exists() and _safe_read(contents) == expected,
            what=f"delete, versions {expected}",
        )
        assert ".p2pversions" not in tree_digest(a), "the archive must never sync"
        nursery.cancel_scope.cancel()


async def test_simple_versioning_keeps_n_versions(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        c = await started(tmp_path, nursery, {})
        a, b = c.data("a"), c.data("b")
        (a / "v.txt").write_text("version 1")
        c.scan("a")
        await wait_for(lambda: (b / "v.txt").exists() and c.in_sync(), what="v1")
        await restart_with_versioning(c, nursery, "b", VersioningConfig(type="simple", keep=2))
        for n in (2, 3, 4):
            await next_second()
            (a / "v.txt").write_text(f"version {n}")
            c.scan("a")
            await wait_for(lambda n=n: (b / "v.txt").read_text() == f"version {n}", what=f"v{n}")
        kept = [(b / v.archive_name).read_text() for v in list_versions(BasicFS(b), "v.txt")]
        assert kept == ["version 2", "version 3"]
        nursery.cancel_scope.cancel()


async def test_versioning_enabled_by_live_config_change(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        c = await started(tmp_path, nursery, {})
        a, b = c.data("a"), c.data("b")
        (a / "v.txt").write_text("version 1")
        c.scan("a")
        await wait_for(lambda: (b / "v.txt").exists() and c.in_sync(), what="v1")
        node = c.nodes["b"]
        folder = replace(node.config.folder(FOLDER), versioning=VersioningConfig(type="simple"))
        await node.apply_config(node.config.with_folder(folder))

        (a / "v.txt").write_text("version 2")
        c.scan("a")
        await wait_for(lambda: (b / "v.txt").read_text() == "version 2", what="v2")
        assert [v.name for v in list_versions(BasicFS(b), "v.txt")] == ["v.txt"]
        nursery.cancel_scope.cancel()


def _safe_read(read):  # type: ignore[no-untyped-def]
    """``read()``, or None while a version it lists is being thinned away."""
    try:
        return read()
    except FileNotFoundError:
        return None
