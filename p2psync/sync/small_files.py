"""Pulling small files in batches: the per-file cost is what limits a tree of small files.

A file of at most ``SMALL_FILE_MAX`` (``is_small_file``) goes through the same steps as
``Puller.pull_item`` — check, build, version, apply, record — but a batch of them shares
each step:

1. *check* (one thread hop, reads only): index entry, the never-clobber ``lstat``, the
   parent directory, and the block from this device if it is here already;
2. *sources* (one hop): who has each file's version;
3. *fetch*: every missing block of the batch requested at once, one wait per peer and
   ``REQUESTS_IN_FLIGHT`` blocks (``request_many``; verified in step 4);
4. *write* (one hop, one batch at a time per folder): create each temp file, write and
   verify its block, set size, mode and mtime; make them all durable at once
   (``FileSystem.fsync_files``: one ``syncfs`` where that is safe and cheap, see
   ``fs/durable.py``) while the index commits their ``note_applying`` records; re-check
   each target and rename.

Step 4 holds the puller's ``write_gate``: one batch writes at a time, so a batch's flush
to disk never also waits for the half-written files of the next.
A file whose fetched block fails its hash check goes back to the caller in ``retry``
(``pull_item`` then tries the other sources); anything else that goes wrong costs that
file only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from ..errors import FilesystemError, IndexError_, UnsafePathError
from ..fs.base import FileStat, WriteHandle
from ..fs.internal import is_internal, temp_name
from ..protocol.model import BlockInfo, FileInfo, FileType
from .block_io import BlockReaders, read_verified, write_if_valid
from .puller import (
    INTERNAL_NAME,
    BlockSource,
    ItemSkipped,
    Puller,
    WaitForSpace,
    blocks_by_place,
    skipped_for,
)

log = logging.getLogger("p2psync.sync.small_files")

SMALL_FILE_MAX = 1024 * 1024  # eight blocks at the smallest block size
BATCH_BYTES = 8 * 1024 * 1024  # a batch's data is held in memory until it is written
REQUESTS_IN_FLIGHT = 64


def is_small_file(fi: FileInfo) -> bool:
    """A file ``pull_small_files`` takes: a regular file of at most ``SMALL_FILE_MAX``."""
    return fi.is_file and not fi.deleted and fi.size <= SMALL_FILE_MAX


def batches(files: Sequence[FileInfo], max_files: int) -> Iterator[list[FileInfo]]:
    """``files`` (each ``is_small_file``) cut into batches of at most ``max_files`` files
    and ``BATCH_BYTES`` bytes."""
    batch: list[FileInfo] = []
    size = 0
    for fi in files:
        if batch and (len(batch) >= max_files or size + fi.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(fi)
        size += fi.size
    if batch:
        yield batch


@dataclass
class BatchResult:
    """The outcome of ``pull_small_files``: every file is in exactly one list."""

    done: list[FileInfo] = field(default_factory=list)
    skipped: list[tuple[FileInfo, ItemSkipped]] = field(default_factory=list)
    retry: list[FileInfo] = field(default_factory=list)
    claimed: int = 0  # free space set aside while the batch writes (Puller.claim_space)

    def fail(self, fi: FileInfo, exc: Exception) -> None:
        if isinstance(exc, ItemSkipped):
            skipped = exc
        elif isinstance(exc, (OSError, UnsafePathError)):
            skipped = skipped_for(exc, fi.name)
        else:  # a bug must cost one item, not the batch
            log.error("pulling %r failed", fi.name, exc_info=exc)
            skipped = ItemSkipped(f"internal error: {exc}")
        self.skipped.append((fi, skipped))


@dataclass
class _Item:
    """A file of the batch between its check and its commit."""

    fi: FileInfo
    cur: FileInfo | None
    data: list[tuple[BlockInfo, bytes]] = field(default_factory=list)  # local or fetched
    missing: list[BlockInfo] = field(default_factory=list)
    failure: str = ""  # why a block could not be fetched ("" = all fetched)
    handle: WriteHandle | None = None
    fetched_bytes: int = 0
    directory_in_way: bool = False

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.close()


async def pull_small_files(
    puller: Puller, files: Sequence[FileInfo], *, written: Callable[[], None] | None = None
) -> BatchResult:
    """Pull ``files`` (each ``is_small_file``) as one batch; see the module docstring.
    ``written`` is called once the files are in place, before their records are stored
    (the caller may start another batch meanwhile)."""
    result = BatchResult()
    try:
        items: list[_Item] = await puller.in_thread(_check_all, puller, files, result)
        wanted = [item for item in items if item.missing]
        if wanted:
            await _fetch_all(puller, wanted)
        try:
            applied = await puller.in_thread(_write_all, puller, items, result)
        finally:
            open_items = [item for item in items if item.handle is not None]
            if open_items:  # only if the write step itself failed unexpectedly
                with trio.CancelScope(shield=True):
                    await puller.in_thread(_close_all, open_items)
    finally:
        puller.release_space(result.claimed)
        result.claimed = 0
    if written is not None:
        written()
    if applied:
        with trio.CancelScope(shield=True):  # the files are in place: record them
            await puller.in_thread(puller.store_applied, applied)
    puller.stats.items_done += len(result.done)
    return result


# ---- step 1: check ----------------------------------------------------------------------
def _check_all(puller: Puller, files: Sequence[FileInfo], result: BatchResult) -> list[_Item]:
    items: list[_Item] = []
    try:
        result.claimed = puller.claim_space(sum(fi.size for fi in files))
    except WaitForSpace:  # each file then waits for its turn in ``pull_item``
        result.retry.extend(files)
        return items
    except ItemSkipped as exc:
        for fi in files:
            result.fail(fi, exc)
        return items
    # Two queries for the batch instead of two per file: the local entries, and which
    # blocks any local file holds (new content: none, so nothing to look up per block).
    known: Mapping[str, FileInfo] | None
    try:
        known = puller.index.get_local_many(puller.folder, [fi.name for fi in files])
    except IndexError_:  # a name the index cannot hold: each file finds out on its own
        known = None
    indexed = puller.index.blocks_present(b.hash for fi in files for b in fi.blocks)
    with puller.fs.cached_dirs(), BlockReaders(puller.fs) as readers:
        for fi in files:
            try:
                item = _check(puller, fi, readers, known, indexed)
            except Exception as exc:
                result.fail(fi, exc)
                continue
            if item is None:
                result.done.append(fi)
            elif item.directory_in_way:
                result.retry.append(fi)  # a directory is in the way: pull_item handles it
            else:
                items.append(item)
    return items


def _check(
    puller: Puller,
    fi: FileInfo,
    readers: BlockReaders,
    known: Mapping[str, FileInfo] | None,
    indexed: Container[bytes],
) -> _Item | None:
    if is_internal(fi.name):
        raise ItemSkipped(INTERNAL_NAME, kept=True)
    checked = puller.check_file(fi, known)
    if checked is None:
        return None  # only metadata changed, now applied
    cur, st = checked
    if st is not None and st.type == FileType.DIRECTORY:
        return _Item(fi, cur, directory_in_way=True)
    puller.make_parent(fi.name)
    cur_blocks = blocks_by_place(cur)
    item = _Item(fi, cur)
    partial = _partial_temp(puller, fi) if len(fi.blocks) > 1 else {}
    for block in fi.blocks:
        if block.size == 0:
            continue
        data = partial.get(block.offset)
        if data is None:
            data = puller.find_local(fi.name, block, cur_blocks, readers, indexed)
        if data is None:
            item.missing.append(block)
        else:
            item.data.append((block, data))
    return item


def _partial_temp(puller: Puller, fi: FileInfo) -> dict[int, bytes]:
    """Verified blocks of a temp file an interrupted pull left behind, by offset."""
    found: dict[int, bytes] = {}
    try:
        with puller.fs.open_read(temp_name(fi.name)) as handle:
            size = handle.stat().size
            for block in fi.blocks:
                if 0 < block.size and block.offset + block.size <= size:
                    data = read_verified(handle, block)
                    if data is not None:
                        found[block.offset] = data
    except (OSError, FilesystemError):
        return {}
    return found


# ---- steps 2 and 3: sources and fetch ---------------------------------------------------
async def _fetch_all(puller: Puller, wanted: list[_Item]) -> None:
    names = [item.fi.name for item in wanted]
    if puller.sources_for_many is not None:
        sources = await puller.sources_for_many(names)
    else:
        sources = {name: await puller.sources_for(name) for name in names}
    # Each file's blocks go to one peer first (files spread over the peers that have
    # them); a peer gets its share in requests of REQUESTS_IN_FLIGHT blocks, one wait each.
    shares: dict[int, tuple[BlockSource, list[tuple[_Item, BlockInfo, list[BlockSource]]]]] = {}
    for i, item in enumerate(wanted):
        peers = list(sources.get(item.fi.name, ()))
        if not peers:
            item.failure = "no connected device has this version"
            continue
        start = i % len(peers)
        peers = peers[start:] + peers[:start]
        share = shares.setdefault(id(peers[0]), (peers[0], []))[1]
        share.extend((item, block, peers) for block in item.missing)
    async with trio.open_nursery() as nursery:
        for peer, share in shares.values():
            for first in range(0, len(share), REQUESTS_IN_FLIGHT):
                nursery.start_soon(
                    _fetch_share, puller, peer, share[first : first + REQUESTS_IN_FLIGHT]
                )


async def _fetch_share(
    puller: Puller, peer: BlockSource, share: list[tuple[_Item, BlockInfo, list[BlockSource]]]
) -> None:
    wanted = [(item.fi.name, block.offset, block.size, block.hash) for item, block, _ in share]
    try:
        results: Sequence[bytes | Exception] = await peer.request_many(puller.folder, wanted)
    except Exception as exc:  # a closed connection
        results = [exc] * len(share)
    for (item, block, peers), result in zip(share, results, strict=True):
        if isinstance(result, Exception):
            await _fetch_elsewhere(puller, item, block, peers[1:], str(result))
        else:
            item.data.append((block, result))
            item.fetched_bytes += len(result)


async def _fetch_elsewhere(
    puller: Puller, item: _Item, block: BlockInfo, peers: list[BlockSource], error: str
) -> None:
    """The first peer could not serve ``block``: try the others, one at a time."""
    for source in peers:
        try:
            data = await source.request(
                puller.folder, item.fi.name, block.offset, block.size, block.hash
            )
        except Exception as exc:  # RequestFailed or a closed connection
            error = str(exc)
            continue
        item.data.append((block, data))
        item.fetched_bytes += len(data)
        return
    item.failure = error  # no peer could serve this block


# ---- step 4: write ----------------------------------------------------------------------
def _write_all(puller: Puller, items: list[_Item], result: BatchResult) -> list[FileInfo]:
    """Step 4; returns the records to store (``Puller.store_applied``), which is left to
    the caller so the next batch can enter the gate meanwhile."""
    with puller.write_gate, puller.fs.cached_dirs():
        built = _build_all(puller, items, result)
        # The notes are committed while the files are flushed; both before any rename.
        notes = puller.note_applying_soon([(item.fi, st) for item, st in built])
        errors = puller.fs.fsync_files([item.handle for item, _ in built if item.handle])
        durable: list[tuple[_Item, FileStat]] = []
        for (item, st), error in zip(built, errors, strict=True):
            try:
                item.close()
                if error is not None:
                    raise error
                durable.append((item, st))
            except Exception as exc:
                result.fail(item.fi, exc)
        notes.result()
        for item, st in durable:
            try:
                puller.commit_file(item.fi, item.cur, temp_name(item.fi.name), st)
            except Exception as exc:
                result.fail(item.fi, exc)
                continue
            result.done.append(item.fi)
        return puller.sync_applied() if built and puller.defer_records else []


def _build_all(
    puller: Puller, items: list[_Item], result: BatchResult
) -> list[tuple[_Item, FileStat]]:
    """Every item's temp file built and sealed, with its metadata (what the index will
    record); an item that fails goes to ``result`` instead."""
    built: list[tuple[_Item, FileStat]] = []
    for item in items:
        try:
            if _build(puller, item, result):
                assert item.handle is not None
                built.append((item, item.handle.stat()))
        except Exception as exc:
            item.close()
            result.fail(item.fi, exc)
    return built


def _build(puller: Puller, item: _Item, result: BatchResult) -> bool:
    """Create and fill the temp file; False if the item went to ``result`` instead."""
    if item.failure:
        raise ItemSkipped(f"could not fetch all blocks: {item.failure}")
    item.handle = puller.open_temp(temp_name(item.fi.name))
    for block, data in item.data:
        if not write_if_valid(item.handle, block, data):
            item.close()
            result.retry.append(item.fi)  # pull_item tries the other sources
            return False
    fetched = len(item.missing)
    puller.count_blocks(
        local=len(item.data) - fetched, network=fetched, network_bytes=item.fetched_bytes
    )
    puller.seal(item.fi, item.handle)
    return True


def _close_all(items: list[_Item]) -> None:
    for item in items:
        try:
            item.close()
        except OSError:
            pass
