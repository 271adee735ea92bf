"""Engine bugs the fault tests found: strict xfails until the engine is fixed (each
reason names the suspected cause; the report lists them), then regression tests."""

from __future__ import annotations

import trio
from faults import Daemon, share_folder
from nodes import Cluster, make_home, wait_for
from test_rel_disk import local_has
from topo import NO_DIAL, link, start_unlinked


# Was a strict xfail (FolderRunner._pull returned early without clearing item_errors)
# until the engine fixed it: kept as a regression test.
async def test_item_errors_clear_once_nothing_is_needed(tmp_path, outcomes) -> None:
    outcomes.record(
        "disk",
        "stale item errors after a vanished file stops being needed",
        "errors cleared, folder idle",
    )
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await start_unlinked(c, nursery)
        await link(c, {("a", "b"): NO_DIAL, ("b", "a"): NO_DIAL})
        (c.data("a") / "gone.bin").write_bytes(b"x" * 200_000)
        c.scan("a")
        await wait_for(lambda: c.runner("a").local_sequence.value > 0, what="scan")
        (c.data("a") / "gone.bin").unlink()
        await link(c)
        b = c.runner("b")
        await wait_for(
            lambda: "gone.bin" in b.status.item_errors, what="b reports the missing file"
        )
        c.scan("a")
        await wait_for(
            lambda: b.status.state == "idle" and not b.status.item_errors,
            timeout=8,
            what="b idle without item errors",
        )
        nursery.cancel_scope.cancel()


# Was a strict xfail until the engine fixed it (FolderRunner now sets _wake at start):
# kept as a regression test.
async def test_daemon_scans_at_start_without_peers(tmp_path, outcomes) -> None:
    outcomes.record("process", "start-up scan of a daemon with no connected peer", "scans at start")
    home = make_home(tmp_path, "a")
    data = tmp_path / "a" / "data"
    (data / "present.txt").write_text("on disk before start")
    share_folder(home, data, {make_home(tmp_path, "b"): NO_DIAL})
    daemon = Daemon(home)
    daemon.start()
    try:
        await wait_for(daemon.ready, timeout=30, what="ready")
        await wait_for(lambda: local_has(home, "present.txt"), timeout=5, what="start-up scan")
    finally:
        daemon.stop()
