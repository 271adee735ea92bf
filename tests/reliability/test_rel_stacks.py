"""A daemon that hangs must be able to say where: ``kill -USR1`` makes it write every
thread's stack to its stderr, even with its event loop stuck."""

from __future__ import annotations

from faults import Daemon
from nodes import make_home, wait_for


async def test_sigusr1_writes_every_threads_stack(tmp_path) -> None:
    home = make_home(tmp_path, "a")
    daemon = Daemon(home)
    daemon.start()
    try:
        await wait_for(daemon.ready, timeout=30, what="ready")
        before = sorted(p.name for p in home.iterdir())
        stacks = daemon.stacks(wait=10)
        assert "Current thread 0x" in stacks, stacks
        assert "trio" in stacks  # the event loop's thread, at the frame it waits in
        assert daemon.proc is not None and daemon.proc.poll() is None  # still running
        assert daemon.cli("status").returncode == 0
        assert sorted(p.name for p in home.iterdir()) == before  # nothing new in the home
    finally:
        daemon.stop()
