"""``p2psync-discovery --workers N``: N worker processes on one port, supervised.

The supervisor binds the port (``SO_REUSEPORT``, not listening: it only holds the port
number, chosen here when ``--listen`` says port 0), makes a socket pair between every two
workers for replication, starts the workers (``worker.py``) and waits until each says it
is ready. Then it watches them: SIGTERM or SIGINT stops them all (SIGTERM each, up to
``STOP_TIMEOUT`` s, then SIGKILL); a worker that exits on its own stops the others and the
supervisor raises ``WorkerFailedError``: a restarted worker would start with an empty
memory store, so it is not restarted (systemd's ``Restart=on-failure`` restarts the
whole server).
"""

from __future__ import annotations

import itertools
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import trio

from p2psync.errors import P2PSyncError

from .listeners import bind_reuse_port, split_listen
from .worker import WorkerConfig

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class WorkerFailedError(P2PSyncError):
    """A discovery server worker process exited or failed to start; all were stopped."""


async def supervise(
    workers: int,
    listen: str,
    make_config: Callable[[int, str, list[int]], WorkerConfig],
    *,
    on_ready: Callable[[list[str]], None],
) -> None:
    """Run ``workers`` workers until a signal (return) or a worker's end (raise).

    ``make_config(index, listen, sibling_fds)`` gives each worker its configuration;
    ``on_ready(urls)`` is called once every worker accepts connections."""
    # Signals are caught from here on: one that comes as soon as the server has said it
    # is ready (or while it starts) must stop the workers, not kill the supervisor.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        await _supervise(workers, listen, make_config, on_ready, signals)


async def _supervise(
    workers: int,
    listen: str,
    make_config: Callable[[int, str, list[int]], WorkerConfig],
    on_ready: Callable[[list[str]], None],
    signals: AsyncIterator[int],
) -> None:
    host, port = split_listen(listen)
    held = bind_reuse_port(host, port)
    procs: list[trio.Process] = []
    try:
        shown = f"[{host}]" if ":" in host else host
        listen = f"{shown}:{held[0].getsockname()[1]}"
        pairs = {(i, j): socket.socketpair() for i, j in itertools.combinations(range(workers), 2)}
        try:
            for index in range(workers):
                ends = [
                    pairs[(min(index, j), max(index, j))][0 if index < j else 1]
                    for j in range(workers)
                    if j != index
                ]
                fds = [end.fileno() for end in ends]
                procs.append(await _start(make_config(index, listen, fds), fds))
        finally:
            for a, b in pairs.values():
                a.close()
                b.close()
        urls: list[str] = []
        ready = 0
        with trio.move_on_after(START_TIMEOUT) as starting:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                for index, proc in enumerate(procs):
                    urls = await _wait_ready(index, proc)
                    ready += 1
                nursery.cancel_scope.cancel()
        if ready < workers and not starting.cancelled_caught:
            return  # a signal while starting: stop them all
        if ready < workers:
            raise WorkerFailedError(f"the workers did not start within {START_TIMEOUT:.0f} s")
        on_ready(urls)
        await _watch(procs, signals)
    finally:
        with trio.CancelScope(shield=True):
            await _stop_all(procs)
        for sock in held:
            sock.close()


async def _start(config: WorkerConfig, fds: list[int]) -> trio.Process:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "discovery_server.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=fds,
        start_new_session=True,  # a terminal's ^C reaches the supervisor, which stops them
    )
    assert proc.stdin is not None
    await proc.stdin.send_all(config.to_json().encode() + b"\n")  # stdin stays open
    return proc


async def _wait_ready(index: int, proc: trio.Process) -> list[str]:
    """The URLs in the worker's ``ready URL...`` line; WorkerFailedError if it ends first."""
    assert proc.stdout is not None
    buffer = b""
    while b"\n" not in buffer:
        data = await proc.stdout.receive_some(4096)
        if not data:
            code = await proc.wait()
            raise WorkerFailedError(f"worker {index} exited with status {code} while starting")
        buffer += data
    words = buffer.split(b"\n", 1)[0].decode().split()
    if words[:1] != ["ready"]:
        raise WorkerFailedError(f"worker {index} said {' '.join(words)!r} instead of ready")
    return words[1:]


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("received %s, stopping", signal.Signals(signum).name)
        scope.cancel()
        return


async def _watch(procs: list[trio.Process], signals: AsyncIterator[int]) -> None:
    failed: list[str] = []
    async with trio.open_nursery() as nursery:

        async def watch(index: int, proc: trio.Process) -> None:
            code = await proc.wait()
            failed.append(f"worker {index} (pid {proc.pid}) exited with status {code}")
            nursery.cancel_scope.cancel()

        for index, proc in enumerate(procs):
            nursery.start_soon(watch, index, proc)
        nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
    if failed:
        log.error("%s; stopping the other workers", failed[0])
        raise WorkerFailedError(f"{failed[0]}; all workers stopped")


async def _stop_all(procs: list[trio.Process]) -> None:
    """SIGTERM every worker still running, SIGKILL those left after STOP_TIMEOUT."""
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(STOP_TIMEOUT):
        for proc in procs:
            await proc.wait()
    for proc in procs:
        if proc.returncode is None:
            log.warning(
                "worker pid %d did not stop within %.0f s; killing it", proc.pid, STOP_TIMEOUT
            )
            proc.kill()
            await proc.wait()
        if proc.stdin is not None:
            await proc.stdin.aclose()
        if proc.stdout is not None:
            await proc.stdout.aclose()
