"""A policy of every stage: small files go through the stages in batches, because the
per-file cost is what limits a tree of small files.

A file of at most ``small_file_max`` (``plan.is_small_file``) goes through the same stages
as a big one, but a batch shares each of them:

1. *check and local copies* (one thread hop, reads only): index entries (one query for
   the batch), the never-clobber ``lstat``, the parent directory, and each block from
   this device if it is here already (one block-map query for the batch);
2. *fetch*: every missing block of the batch requested at once, one wait per peer and
   ``batch_requests_in_flight`` blocks (``PeerFetch.fetch_batch``);
3. *assemble, commit* (one hop, one batch at a time per folder): create each temp file,
   write and verify its blocks, seal it; make them all durable at once
   (``FileSystem.fsync_files``: one ``syncfs`` where that is safe and cheap, see
   ``fs/durable.py``) while the index commits their ``note_applying`` records; re-check
   each target and rename;
4. *record*: the batch's records in one transaction, after leaving the write gate.

Step 3 holds the commit stage's ``write_gate``: one batch writes at a time, so a batch's
flush to disk never also waits for the half-written files of the next.
A file whose fetched block fails its hash check goes back to the caller in ``retry``
(``Puller.pull_item`` then tries the other sources); anything else that goes wrong costs
that file only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from ...errors import IndexError_, UnsafePathError
from ...fs.base import FileStat, WriteHandle
from ...fs.internal import is_internal, temp_name
from ...protocol.fileinfo import FileInfo, FileType, LocalFileInfo
from .assemble import Assembler
from .base import (
    INTERNAL_NAME,
    ItemSkipped,
    PullSettings,
    PullStats,
    WaitForSpace,
    blocks_by_place,
    skipped_for,
)
from .block_io import BlockReaders
from .commit import Committer
from .fetch import Gathered, LocalBlocks, PeerFetch
from .record import Recorder

log = logging.getLogger("p2psync.sync.small_files")


@dataclass
class BatchResult:
    """The outcome of a batch: every file is in exactly one list."""

    done: list[FileInfo] = field(default_factory=list)
    skipped: list[tuple[FileInfo, ItemSkipped]] = field(default_factory=list)
    retry: list[FileInfo] = field(default_factory=list)
    claimed: int = 0  # free space set aside while the batch writes (SpaceClaims)

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
class _Item(Gathered):
    """A file of the batch between its check and its commit."""

    cur: LocalFileInfo | None = None
    handle: WriteHandle | None = None
    fresh: bool = False  # the temp file was created by this pull (open_fresh_temp)
    directory_in_way: bool = False

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.close()


class SmallFiles:
    def __init__(
        self,
        settings: PullSettings,
        *,
        local: LocalBlocks,
        peers: PeerFetch,
        assemble: Assembler,
        commit: Committer,
        recorder: Recorder,
        stats: PullStats,
    ) -> None:
        self._settings = settings
        self._local = local
        self._peers = peers
        self._assemble = assemble
        self._commit = commit
        self._recorder = recorder
        self._stats = stats

    async def pull(
        self, files: Sequence[FileInfo], *, written: Callable[[], None] | None = None
    ) -> BatchResult:
        """Pull ``files`` (each ``is_small_file``) as one batch; see the module docstring.
        ``written`` is called once the files are in place, before their records are stored
        (the caller may start another batch meanwhile)."""
        in_thread, space = self._settings.in_thread, self._commit.space
        result = BatchResult()
        try:
            items: list[_Item] = await in_thread(self._check_all, files, result)
            wanted = [item for item in items if item.missing]
            if wanted:
                await self._peers.fetch_batch(wanted)
            try:
                applied = await in_thread(self._write_all, items, result)
            finally:
                open_items = [item for item in items if item.handle is not None]
                if open_items:  # only if the write step itself failed unexpectedly
                    with trio.CancelScope(shield=True):
                        await in_thread(_close_all, open_items)
        finally:
            space.release(result.claimed)
            result.claimed = 0
        if written is not None:
            written()
        if applied:
            with trio.CancelScope(shield=True):  # the files are in place: record them
                await in_thread(self._recorder.store_applied, applied)
        self._stats.items_done += len(result.done)
        return result

    # ---- step 1: check and local copies ------------------------------------------------
    def _check_all(self, files: Sequence[FileInfo], result: BatchResult) -> list[_Item]:
        settings = self._settings
        items: list[_Item] = []
        try:
            result.claimed = self._commit.space.claim(sum(fi.size for fi in files))
        except WaitForSpace:  # each file then waits for its turn in ``pull_item``
            result.retry.extend(files)
            return items
        except ItemSkipped as exc:
            for fi in files:
                result.fail(fi, exc)
            return items
        # Two queries for the batch instead of two per file: the local entries, and which
        # blocks any local file holds (new content: none, so nothing to look up per block).
        known: Mapping[str, LocalFileInfo] | None
        try:
            known = settings.index.get_local_many(settings.folder, [fi.name for fi in files])
        except IndexError_:  # a name the index cannot hold: each file finds out on its own
            known = None
        indexed = settings.index.blocks_present(b.hash for fi in files for b in fi.blocks)
        with settings.fs.cached_dirs(), BlockReaders(settings.fs) as readers:
            for fi in files:
                try:
                    item = self._check(fi, readers, known, indexed)
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
        self,
        fi: FileInfo,
        readers: BlockReaders,
        known: Mapping[str, LocalFileInfo] | None,
        indexed: Container[bytes],
    ) -> _Item | None:
        if is_internal(fi.name):
            raise ItemSkipped(INTERNAL_NAME, kept=True)
        if known is not None:
            cur = known.get(fi.name)
        else:
            cur = self._settings.index.get_local(self._settings.folder, fi.name)
        checked = self._commit.check_file(fi, cur)
        if checked is None:
            return None  # only metadata changed, now applied
        cur, st = checked
        if st is not None and st.type == FileType.DIRECTORY:
            return _Item(fi, cur=cur, directory_in_way=True)
        self._commit.make_parent(fi.name)
        cur_blocks = blocks_by_place(cur)
        item = _Item(fi, cur=cur)
        partial = self._assemble.partial_temp(fi) if len(fi.blocks) > 1 else {}
        for block in fi.blocks:
            if block.size == 0:
                continue
            data = partial.get(block.offset)
            if data is None:
                data = self._local.find(fi.name, block, cur_blocks, readers, indexed)
            if data is None:
                item.missing.append(block)
            else:
                item.data.append((block, data))
        return item

    # ---- step 3: assemble and commit ---------------------------------------------------
    def _write_all(self, items: list[_Item], result: BatchResult) -> list[LocalFileInfo]:
        """Step 3; returns the records to store (``Recorder.store_applied``), which is
        left to the caller so the next batch can enter the gate meanwhile."""
        commit, recorder = self._commit, self._recorder
        with commit.write_gate, self._settings.fs.cached_dirs():
            built = self._build_all(items, result)
            # The notes are committed while the files are flushed; both before any rename.
            records = [recorder.as_recorded(item.fi, st) for item, st in built]
            notes = recorder.note_records_soon(records)
            errors = self._settings.fs.fsync_files(
                [item.handle for item, _ in built if item.handle]
            )
            durable: list[tuple[_Item, FileStat, LocalFileInfo]] = []
            for (item, st), record, error in zip(built, records, errors, strict=True):
                try:
                    item.close()
                    if error is not None:
                        raise error
                    durable.append((item, st, record))
                except Exception as exc:
                    result.fail(item.fi, exc)
            notes.result()
            for item, st, record in durable:
                try:
                    commit.commit_file(item.fi, item.cur, temp_name(item.fi.name), st, record)
                except Exception as exc:
                    result.fail(item.fi, exc)
                    continue
                result.done.append(item.fi)
            return recorder.sync_applied() if built and recorder.defer else []

    def _build_all(self, items: list[_Item], result: BatchResult) -> list[tuple[_Item, FileStat]]:
        """Every item's temp file built and sealed, with its metadata (what the index will
        record); an item that fails goes to ``result`` instead."""
        built: list[tuple[_Item, FileStat]] = []
        for item in items:
            try:
                if self._build(item, result):
                    assert item.handle is not None
                    st = item.handle.stat()
                    if item.fresh:
                        st = self._assemble.fresh_mode(item.fi, item.handle, st)
                    built.append((item, st))
            except Exception as exc:
                item.close()
                result.fail(item.fi, exc)
        return built

    def _build(self, item: _Item, result: BatchResult) -> bool:
        """Create and fill the temp file; False if the item went to ``result`` instead."""
        if item.failure:
            raise ItemSkipped(f"could not fetch all blocks: {item.failure}")
        tmp = temp_name(item.fi.name)
        item.handle = self._assemble.open_fresh_temp(tmp, item.fi)
        item.fresh = item.handle is not None
        if item.handle is None:
            item.handle = self._assemble.open_temp(tmp)
        if not self._assemble.write_blocks(item.handle, item.data):
            item.close()
            result.retry.append(item.fi)  # pull_item tries the other sources
            return False
        fetched = len(item.missing)
        self._stats.count_blocks(
            local=len(item.data) - fetched, network=fetched, network_bytes=item.fetched_bytes
        )
        self._assemble.seal(item.fi, item.handle, fresh=item.fresh)
        return True


def _close_all(items: list[_Item]) -> None:
    for item in items:
        try:
            item.close()
        except OSError:
            pass
