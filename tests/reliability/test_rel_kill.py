"""A receiving daemon SIGKILLed at random points of a large sync, then restarted.

After every kill each user file must be either its old or its new version (never a
mix, never a partial file under its real name); at the end the folder is converged and
no temp file is left. N kills (3 in ``make test``; P2PSYNC_SOAK_KILLS, default 25, under
P2PSYNC_SOAK=1), at random progress points chosen from a printed seed.
"""

from __future__ import annotations

import os
import random
import time

import trio
from conftest import soak_enabled
from faults import Daemon, mixed_files, sha, share_folder, temp_files, user_files
from nodes import FOLDER, Cluster, wait_for
from topo import NO_DIAL, start_unlinked

from p2psync.config import DeviceConfig, FolderConfig, load_config, save_config
from p2psync.identity import load_identity

FILES = 16
SIZE = 384 * 1024


def write_version(root, rng: random.Random, version: int) -> dict[str, str]:
    out = {}
    for i in range(FILES):
        data = rng.randbytes(SIZE + i * 1000) + f"v{version}".encode()
        (root / f"f{i:02d}.bin").write_bytes(data)
        out[f"f{i:02d}.bin"] = sha(data)
    return out


def progress(root, new: dict[str, str]) -> int:
    return sum(1 for n, h in user_files(root).items() if new.get(n) == h)


async def test_kill_receiver_during_large_sync(tmp_path, outcomes) -> None:
    seed = int(os.environ.get("P2PSYNC_SEED", time.time_ns() % 1_000_000))
    kills = int(os.environ.get("P2PSYNC_SOAK_KILLS", "25")) if soak_enabled() else 3
    print(f"kill/restart seed={seed} kills={kills}")
    rng = random.Random(seed)
    c = Cluster(tmp_path, ["a", "b"])
    b_home, b_data = c.homes["b"], c.data("b")
    del c.homes["b"]
    c.names = ["a"]
    async with trio.open_nursery() as nursery:
        await start_unlinked(c, nursery)
        a = c.nodes["a"]
        b_id = load_identity(b_home).device_id
        cfg = a.config.with_device(DeviceConfig(id=b_id, name="b", addresses=NO_DIAL)).with_folder(
            FolderConfig(
                id=FOLDER,
                path=str(c.data("a")),
                devices=(b_id,),
                rescan_interval_s=0,
                watcher=False,
            )
        )
        save_config(cfg, c.homes["a"])
        await a.apply_config(cfg)
        old = write_version(c.data("a"), rng, 1)
        c.scan("a")
        share_folder(b_home, b_data, {c.homes["a"]: tuple(a.connections.listen_addresses)})
        bcfg = load_config(b_home)
        save_config(
            bcfg.__class__(**{**bcfg.__dict__, "max_recv_kbps": 8 * 1024}), b_home
        )  # ~1 s per version
        daemon = Daemon(b_home)
        daemon.start()
        try:
            await wait_for(
                lambda: user_files(b_data) == old, timeout=60, what="old version everywhere"
            )
            new = write_version(c.data("a"), rng, 2)
            c.scan("a")
            allowed = {n: {old[n], new[n]} for n in old}
            for k in range(kills):
                target = rng.randint(0, FILES - 2)
                await wait_for(
                    lambda t=target, v=new: progress(b_data, v) >= t or not daemon.alive(),
                    timeout=60,
                    what=f"progress {target}/{FILES} before kill {k + 1}",
                )
                daemon.kill()
                bad = mixed_files(b_data, allowed)
                assert not bad, f"kill {k + 1} (seed {seed}): files neither old nor new: {bad}"
                if (
                    progress(b_data, new) == FILES
                ):  # finished before we struck: make the next kill count
                    new = write_version(c.data("a"), rng, k + 3)
                    allowed = {n: allowed[n] | {new[n]} for n in old}
                    c.scan("a")
                daemon.start()
            await wait_for(
                lambda: user_files(b_data) == new, timeout=90, what=f"converged (seed {seed})"
            )
            await wait_for(lambda: not temp_files(b_data), timeout=20, what="temp files cleaned")
            assert daemon.alive()
        finally:
            daemon.stop()
        nursery.cancel_scope.cancel()
    outcomes.record(
        "process",
        "SIGKILL the receiving daemon mid-sync, restart",
        "converged, every file old or new",
        trials=kills,
        detail=f"seed {seed}",
    )
