"""Stage *fetch*: a file's blocks, from this device first, then from peers.

- *local copies* (``LocalBlocks``): a block already in an interrupted pull's temp file,
  in the old version of the same file, in a file written earlier in this page (not yet
  in the block map: ``PageMemo``), or anywhere the block map says. Renames and copies so
  cost no network; renames of whole files are a policy of their own (local_renames.py);
- *peers* (``PeerFetch``): one big file keeps several requests in flight, spread across
  the peers that have its version, each block handed to the assemble stage
  (``BlockWrites``) as it arrives; a batch of small files asks each peer for its share in
  a few ``request_many`` calls, one wait each.

Every block read locally is verified here; every fetched block is verified by the
assemble stage before it is written.
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import trio

from ...fs.base import WriteHandle
from ...protocol.fileinfo import BlockInfo, FileInfo
from ..progress import PullProgress
from .base import (
    BlockSource,
    ItemSkipped,
    PullSettings,
    PullStats,
    SourcesFor,
    SourcesForMany,
    blocks_by_place,
)
from .block_io import BlockReaders, BlockWrites, read_verified
from .record import Recorder


class LocalBlocks:
    """Blocks found on this device (blocking: call from a worker thread)."""

    def __init__(
        self, settings: PullSettings, recorder: Recorder, stats: PullStats, progress: PullProgress
    ) -> None:
        self._settings = settings
        self._recorder = recorder
        self._stats = stats
        self._progress = progress

    def find(
        self,
        name: str,
        block: BlockInfo,
        cur_blocks: dict[tuple[int, bytes], BlockInfo],
        readers: BlockReaders,
        indexed: Container[bytes] | None = None,
    ) -> bytes | None:
        """The block's data from this device, verified, or None: from the old version of
        this file at the same place (``cur_blocks``), else from any local file.
        ``indexed``: the hashes the block map held when the batch began
        (``IndexStore.blocks_present``); others are not looked up."""
        data = None
        if (block.offset, block.hash) in cur_blocks:
            data = readers.read(name, block)
        if data is None:
            data = self._recent_copy(block, readers)
        if data is None and (indexed is None or block.hash in indexed):
            folder = self._settings.folder
            for loc in self._settings.index.find_block(block.hash):
                if loc.folder != folder or loc.size != block.size:
                    continue
                data = readers.read(loc.name, BlockInfo(loc.offset, loc.size, block.hash))
                if data is not None:
                    break
        if data is None:
            # a parallel rename may have moved the indexed copy a moment ago
            data = self._recent_copy(block, readers)
        return data

    def _recent_copy(self, block: BlockInfo, readers: BlockReaders) -> bytes | None:
        """The block from a file written earlier in this page (not yet in the block map)."""
        recent = self._recorder.memo.blocks.get(block.hash)
        if recent is None or recent[2] != block.size:
            return None
        return readers.read(recent[0], BlockInfo(recent[1], recent[2], block.hash))

    def fill(self, handle: WriteHandle, fi: FileInfo, cur: FileInfo | None) -> list[BlockInfo]:
        """Copy every block we can find on this device into the temp file; return the rest.
        A big file's blocks are split between ``fill_threads`` threads: reading, hashing
        and page-cache writes then use both cores (a 1 GiB copy: 0.9 s on one, 0.5 on two)."""
        tunings = self._settings.tunings
        existing_size = handle.stat().size
        cur_blocks = blocks_by_place(cur)
        blocks = [b for b in fi.blocks if b.size]
        parts = tunings.fill_threads if len(blocks) >= tunings.fill_split_min_blocks else 1
        step = -(-len(blocks) // parts) or 1
        ranges = [blocks[i : i + step] for i in range(0, len(blocks), step)]

        def fill(part: list[BlockInfo]) -> tuple[list[BlockInfo], int]:
            return self.fill_range(handle, fi.name, part, cur_blocks, existing_size)

        if len(ranges) <= 1:
            results = [fill(part) for part in ranges]
        else:
            with ThreadPoolExecutor(len(ranges), "p2psync-fill") as pool:
                results = list(pool.map(fill, ranges))
        missing: list[BlockInfo] = []
        found = 0
        for part_missing, part_found in results:
            missing.extend(part_missing)
            found += part_found
        self._stats.count_blocks(local=found)
        return missing

    def fill_range(
        self,
        handle: WriteHandle,
        name: str,
        blocks: list[BlockInfo],
        cur_blocks: dict[tuple[int, bytes], BlockInfo],
        existing_size: int,
    ) -> tuple[list[BlockInfo], int]:
        """``fill`` for some of the blocks: (still missing, found locally)."""
        missing: list[BlockInfo] = []
        found = 0
        advance = self._progress.advance
        with BlockReaders(self._settings.fs) as readers:
            for block in blocks:
                # 1. already in a partial temp file from an earlier attempt
                if block.offset + block.size <= existing_size and read_verified(handle, block):
                    found += 1
                    advance(name, block.size)
                    continue
                data = self.find(name, block, cur_blocks, readers)
                if data is None:
                    missing.append(block)
                    continue
                handle.write_at(block.offset, data)
                found += 1
                advance(name, block.size)
        return missing, found


@dataclass
class Gathered:
    """One file of a batch: its blocks found locally or fetched, and what is missing."""

    fi: FileInfo
    data: list[tuple[BlockInfo, bytes]] = field(default_factory=list)  # local or fetched
    missing: list[BlockInfo] = field(default_factory=list)
    failure: str = ""  # why a block could not be fetched ("" = all fetched)
    fetched_bytes: int = 0


class PeerFetch:
    """Blocks from the connected peers that have the needed version."""

    def __init__(
        self,
        settings: PullSettings,
        stats: PullStats,
        progress: PullProgress,
        sources_for: SourcesFor,
        sources_for_many: SourcesForMany | None,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._progress = progress
        self._sources_for = sources_for
        self._sources_for_many = sources_for_many

    # ---- one big file ------------------------------------------------------------------
    async def fetch_file(self, handle: WriteHandle, fi: FileInfo, blocks: list[BlockInfo]) -> None:
        """Fetch ``blocks`` of ``fi`` into ``handle``, verified (``BlockWrites``)."""
        sources = list(await self._sources_for(fi.name))
        if not sources:
            raise ItemSkipped("no connected device has this version")
        random.shuffle(sources)
        folder, stats, progress = self._settings.folder, self._stats, self._progress
        failures: list[str] = []
        requests = self._settings.tunings.requests_in_flight(fi.block_size)
        in_flight = trio.CapacityLimiter(requests)
        failed: list[str] = []

        async def fetch_one(i: int, block: BlockInfo, cancel: trio.CancelScope) -> None:
            async with in_flight:
                start = i % len(sources)
                for source in sources[start:] + sources[:start]:
                    try:
                        data = await source.request(
                            folder, fi.name, block.offset, block.size, block.hash
                        )
                    except Exception as exc:  # RequestFailed or a closed connection
                        failures.append(str(exc))
                        continue
                    if await writes.write(block, data):
                        stats.blocks_network += 1
                        stats.bytes_network += len(data)
                        progress.advance(fi.name, len(data), _device_of(source))
                        return
                    failures.append(f"block at {block.offset} failed its hash check")
                failed.append(failures[-1] if failures else "no source")
                cancel.cancel()

        async with trio.open_nursery() as writers:
            async with trio.open_nursery() as fetchers:
                writes = BlockWrites(
                    handle, self._settings.in_thread, fetchers.cancel_scope, requests
                )
                writers.start_soon(writes.run)
                for i, block in enumerate(blocks):
                    fetchers.start_soon(fetch_one, i, block, fetchers.cancel_scope)
            writers.cancel_scope.cancel()
        if writes.error is not None:
            raise writes.error
        if failed:
            raise ItemSkipped(f"could not fetch all blocks: {failed[0]}")

    # ---- a batch of small files --------------------------------------------------------
    async def fetch_batch(self, wanted: Sequence[Gathered]) -> None:
        """Every missing block of ``wanted`` into its ``data`` (or its ``failure``)."""
        names = [item.fi.name for item in wanted]
        if self._sources_for_many is not None:
            sources = await self._sources_for_many(names)
        else:
            sources = {name: await self._sources_for(name) for name in names}
        # Each file's blocks go to one peer first (files spread over the peers that have
        # them); a peer gets its share in requests of ``batch_requests_in_flight`` blocks,
        # one wait each.
        shares: dict[int, tuple[BlockSource, list[tuple[Gathered, BlockInfo, list[BlockSource]]]]]
        shares = {}
        for i, item in enumerate(wanted):
            peers = list(sources.get(item.fi.name, ()))
            if not peers:
                item.failure = "no connected device has this version"
                continue
            start = i % len(peers)
            peers = peers[start:] + peers[:start]
            share = shares.setdefault(id(peers[0]), (peers[0], []))[1]
            share.extend((item, block, peers) for block in item.missing)
        step = self._settings.tunings.batch_requests_in_flight
        async with trio.open_nursery() as nursery:
            for peer, share in shares.values():
                for first in range(0, len(share), step):
                    nursery.start_soon(self._fetch_share, peer, share[first : first + step])

    async def _fetch_share(
        self, peer: BlockSource, share: list[tuple[Gathered, BlockInfo, list[BlockSource]]]
    ) -> None:
        wanted = [(item.fi.name, block.offset, block.size, block.hash) for item, block, _ in share]
        try:
            results: Sequence[bytes | Exception] = await peer.request_many(
                self._settings.folder, wanted
            )
        except Exception as exc:  # a closed connection
            results = [exc] * len(share)
        for (item, block, peers), result in zip(share, results, strict=True):
            if isinstance(result, Exception):
                await self._fetch_elsewhere(item, block, peers[1:], str(result))
            else:
                item.data.append((block, result))
                item.fetched_bytes += len(result)

    async def _fetch_elsewhere(
        self, item: Gathered, block: BlockInfo, peers: list[BlockSource], error: str
    ) -> None:
        """The first peer could not serve ``block``: try the others, one at a time."""
        for source in peers:
            try:
                data = await source.request(
                    self._settings.folder, item.fi.name, block.offset, block.size, block.hash
                )
            except Exception as exc:  # RequestFailed or a closed connection
                error = str(exc)
                continue
            item.data.append((block, data))
            item.fetched_bytes += len(data)
            return
        item.failure = error  # no peer could serve this block


def _device_of(source: BlockSource) -> bytes | None:
    device = getattr(source, "device_id", None)
    return getattr(device, "raw", None)
