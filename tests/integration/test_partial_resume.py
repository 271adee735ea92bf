"""A partial temp file left by an interrupted pull is reused: its verified blocks are not
fetched again, and a block in it that does not verify is replaced, not trusted."""

import os
import time

import trio
from nodes import Cluster, wait_for

from p2psync.fs.internal import temp_name

BLOCK = 128 * 1024


async def test_verified_blocks_of_a_partial_temp_file_are_reused(tmp_path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    payload = os.urandom(8 * BLOCK)  # 8 blocks of 128 KiB
    async with trio.open_nursery() as nursery:
        await c.start(nursery, "b")
        # b already holds the first 5 blocks from an earlier, interrupted pull; the
        # third of them is corrupt and must be fetched again.
        partial = bytearray(payload[: 5 * BLOCK])
        partial[2 * BLOCK : 2 * BLOCK + 10] = b"corrupted!"
        (c.data("b") / temp_name("big.bin")).write_bytes(bytes(partial))
        (c.data("a") / "big.bin").write_bytes(payload)
        await c.start(nursery, "a")
        await c.connect_all()
        c.scan("a")
        await wait_for(lambda: (c.data("b") / "big.bin").exists(), what="pull completes")
        assert (c.data("b") / "big.bin").read_bytes() == payload
        stats = c.runner("b").puller.stats
        assert stats.blocks_network == 4  # blocks 2, 5, 6, 7
        assert not (c.data("b") / temp_name("big.bin")).exists()
        nursery.cancel_scope.cancel()


async def test_stale_temp_files_are_removed_once_nothing_is_needed(tmp_path) -> None:
    c = Cluster(tmp_path, ["a"])
    stale = c.data("a") / "sub" / temp_name("gone.bin")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an interrupted pull")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    recent = c.data("a") / temp_name("recent.bin")
    recent.write_bytes(b"may still be reused")
    async with trio.open_nursery() as nursery:
        await c.start(nursery, "a")
        await c.connect_all()
        await wait_for(lambda: not stale.exists(), what="stale temp file removed")
        assert (c.data("a") / "sub").is_dir()
        assert recent.exists()  # younger than a day: kept for reuse
        nursery.cancel_scope.cancel()
