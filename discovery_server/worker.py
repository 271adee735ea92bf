"""One worker of ``p2psync-discovery --workers N``: ``python -m discovery_server.worker``.

The supervisor (``supervisor.py``) starts it with its ``WorkerConfig`` as one JSON line on
stdin and the socket pairs to its siblings as inherited descriptors. It serves on the
shared port (``SO_REUSEPORT``), replicates a memory store (``replication.py``) or shares
Redis, writes ``ready URL...`` to stdout once it accepts connections, and stops on
SIGTERM, SIGINT or when its stdin closes (the supervisor is gone).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from .logsetup import setup_logging
from .metrics import Metrics
from .replication import ReplicatedStore
from .server import serve_discovery
from .service import ServerSettings
from .stores import MemoryStore, Store, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    index: int
    settings: ServerSettings
    listen: str  # HOST:PORT with the port already chosen
    store_spec: str
    sibling_fds: list[int] = field(default_factory=list)
    cert: str | None = None
    key: str | None = None
    snapshot_interval: float = 60.0
    redis_prefix: str = "p2psync-disco:"
    log_level: str = "info"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        data: dict[str, Any] = json.loads(text)
        data["settings"] = ServerSettings(**data["settings"])
        return cls(**data)


def main() -> None:
    config = WorkerConfig.from_json(sys.stdin.readline())
    setup_logging(config.log_level)
    trio.run(run_worker, config)


async def run_worker(config: WorkerConfig) -> None:
    stop = trio.Event()
    metrics = Metrics(worker=config.index)
    siblings = [
        trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
        for fd in config.sibling_fds
    ]
    async with open_store(
        config.store_spec,
        clock=time.time,
        sweep_interval=config.snapshot_interval,
        redis_prefix=config.redis_prefix,
    ) as opened:
        async with trio.open_nursery() as nursery:
            store: Store = opened
            if isinstance(opened, MemoryStore):
                replicated = ReplicatedStore(opened, siblings, metrics)
                nursery.start_soon(replicated.run)
                store = replicated
            nursery.start_soon(_stop_on_signal_or_eof, stop)
            async with trio.open_nursery() as serving:
                binds, _ = await serving.start(
                    lambda task_status: serve_discovery(
                        config.settings,
                        store,
                        listen=config.listen,
                        certfile=config.cert,
                        keyfile=config.key,
                        shutdown_trigger=stop.wait,
                        metrics=metrics,
                        reuse_port=True,
                        task_status=task_status,
                    )
                )
                print("ready", *binds, flush=True)
            nursery.cancel_scope.cancel()  # served and stopped: replication ends too
    for stream in siblings:
        await stream.aclose()


async def _stop_on_signal_or_eof(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

            async def on_eof() -> None:
                while True:
                    await trio.lowlevel.wait_readable(0)
                    if not os.read(0, 4096):
                        break
                log.warning("the supervisor is gone; stopping")
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            nursery.start_soon(on_eof)
    stop.set()


if __name__ == "__main__":
    main()
