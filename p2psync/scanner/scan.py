"""The scan: turn what is on disk into new local entries (LocalFileInfo), hashing only what
changed.

``scan()`` merge-joins two streams sorted by name: the folder walk (``walker.Walker``)
and the local index (``LocalIndexView.iter_local``). Per name:

* on disk only                -> new entry (files are hashed), fresh version;
* in the index only           -> tombstone (unless ignored, unreadable, or a case twin);
* both, metadata equal        -> nothing (the cheap path: no hashing, no allocation);
* both, metadata differs      -> rehash / new version with our counter bumped.

Memory stays bounded: one directory listing per level, a bounded queue of hashing
jobs, and batches of ``batch_size``. Hashing runs on ``hash_workers`` threads
(hashlib releases the GIL). This module is synchronous; the daemon runs the generator
in a worker thread. It writes nothing: the caller stores each batch in the index.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import UnsafePathError
from ..fs.base import FileStat, FileSystem
from ..fs.internal import is_internal
from ..protocol import vector
from ..protocol.fileinfo import FileType, LocalFileInfo, block_size_for
from ..protocol.names import validate_name
from ..selection import Selection, is_selected
from .blocks import hash_file
from .walker import DiskItem, IgnoreMatcher, ScanProblem, TempsSeen, Walker, is_at_or_below

__all__ = [
    "IgnoreMatcher",
    "LocalIndexView",
    "ScanBatch",
    "ScanProblem",
    "ScanProgress",
    "scan",
]

_SURROGATE = re.compile("[\ud800-\udfff]")

# LocalFileInfo.local_flags bit: "invalid because ignored on this device". Only such entries
# come back to life (new version) when un-ignored; entries invalid for other reasons
# (e.g. a receive-only folder's local change) are compared like any other.
FLAG_IGNORED = 1 << 1
# LocalFileInfo.local_flags bit: a peer's entry this device refused to store (one of p2psync's
# own names, or a name this filesystem cannot hold): kept invalid with the refused
# version (``Puller.keep_not_synced``). It was never on disk, so its absence is no
# deletion. (sync.overrides' FLAG_RECEIVE_ONLY is 1.)
FLAG_NOT_SYNCED_HERE = 1 << 2
# LocalFileInfo.local_flags bit, always with FLAG_NOT_SYNCED_HERE: left out by this device's
# selective sync (``selection.py``): kept invalid with the cluster's version, never on
# disk here, so its absence is no deletion. Selecting it again forgets the entry.
FLAG_NOT_SELECTED = 1 << 3
NOT_SELECTED = FLAG_NOT_SYNCED_HERE | FLAG_NOT_SELECTED


class LocalIndexView(Protocol):
    """Read access to this device's own index entries for one folder."""

    def get_local(self, name: str) -> LocalFileInfo | None:
        """The local entry for ``name`` (deleted ones included), or None."""
        ...

    def iter_local(self, prefix: str = "") -> Iterator[LocalFileInfo]:
        """Local entries (deleted included) whose name starts with ``prefix``, streamed,
        sorted by name in code-point order (= UTF-8 bytes = SQLite BINARY collation).
        Extra entries outside the prefix are tolerated (the scanner filters them)."""
        ...


class ScanProgress:
    """How far a scan is: files and bytes hashed so far (updated by the hashing threads,
    read by anyone), and when it started."""

    def __init__(self, started: float) -> None:
        self.started = started  # time.monotonic()
        self.files_hashed = 0
        self.bytes_hashed = 0
        self._lock = threading.Lock()

    def hashed(self, size: int) -> None:
        with self._lock:
            self.files_hashed += 1
            self.bytes_hashed += size

    def snapshot(self, now: float) -> dict[str, float | int]:
        """Files and bytes hashed so far, seconds since the start, bytes hashed per second
        (``now``: time.monotonic())."""
        seconds = max(now - self.started, 1e-6)
        return {
            "files_hashed": self.files_hashed,
            "bytes_hashed": self.bytes_hashed,
            "seconds": round(seconds, 3),
            "bytes_per_s": round(self.bytes_hashed / seconds),
        }


@dataclass
class ScanBatch:
    """One chunk of scan results, in name order within each scanned subpath.

    ``files``: changed entries with a new version (``sequence`` 0): store them and assign
    sequences; an entry with ``invalid=True``, ``FLAG_IGNORED`` in ``local_flags`` and its
    old version means "now ignored here".
    ``refreshed``: same version and content, only local bookkeeping (inode) changed:
    store without announcing. ``problems``: entries skipped, with the reason.
    """

    files: list[LocalFileInfo] = field(default_factory=list)
    refreshed: list[LocalFileInfo] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files or self.refreshed or self.problems)


def scan(
    fs: FileSystem,
    view: LocalIndexView,
    *,
    short_id: int,
    now: Callable[[], int],
    ignore: IgnoreMatcher | None = None,
    subpaths: Sequence[str] | None = None,
    hash_workers: int = 2,
    batch_size: int = 1000,
    batch_bytes: int = 16 << 20,
    ignore_permissions: bool = False,
    progress: ScanProgress | None = None,
    selection: Selection = (),
    temps_seen: TempsSeen | None = None,
) -> Generator[ScanBatch, None, None]:
    """Scan ``fs`` against ``view``, yielding batches of changes (nothing if unchanged).

    ``short_id``: this device's short ID (version counter, ``modified_by``).
    ``now``: Unix seconds for version counters. ``ignore``: patterns to honour (ignored
    entries are neither recorded nor deleted; a known entry that became ignored is
    re-announced invalid). ``subpaths``: scan only these names and what lies below them
    (a parent the index does not know yet is scanned instead); None = whole folder.
    ``ignore_permissions``: do not compare permissions; mark entries ``no_permissions``.
    A batch ends after ``batch_size`` entries or once its files hold ``batch_bytes`` (so
    peers learn of big files as they are hashed, not after the whole folder); each batch
    ended by size doubles the bound, up to 256 MiB.
    ``progress``: counts what is hashed as it is hashed (read from any thread).
    ``selection``: the names this device keeps (selective sync); a known entry missing
    from disk outside it is re-announced invalid (``as_not_selected``), never deleted.
    ``temps_seen``: collects the puller's temp files the walk passes (for the cleaner).
    Raises UnsafePathError for an invalid subpath and FilesystemError if the folder root
    is missing; per-entry failures become ``ScanBatch.problems``.
    """
    job = _Scan(
        fs,
        view,
        short_id=short_id,
        now=now,
        ignore=ignore,
        hash_workers=max(1, hash_workers),
        batch_size=max(1, batch_size),
        batch_bytes=max(1, batch_bytes),
        ignore_permissions=ignore_permissions,
        progress=progress,
        selection=selection,
        temps_seen=temps_seen,
    )
    return job.run(job.roots(subpaths))  # roots now: a bad subpath raises at the call


# Outcome kinds travelling through the ordered output queue.
_FILE, _REFRESH, _PROBLEM = range(3)
_Outcome = tuple[int, LocalFileInfo | ScanProblem]
_HashJob = tuple[DiskItem, LocalFileInfo | None, vector.Vector]
# Small files are hashed in groups on the scanning thread itself: hashing a few KiB is
# mostly Python and syscalls, and every other thread doing that contends for the GIL at
# each syscall (a pool of one thread made an initial scan of 10,000 small files ~17%
# slower than hashing inline). The groups keep the directory descriptors of their files
# (``cached_dirs``). Large files (where hashlib releases the GIL) use ``hash_workers``.
_SMALL_FILE = 256 * 1024
_GROUP_FILES = 64
_GROUP_BYTES = 4 << 20
_MAX_BATCH_BYTES = 256 << 20  # a byte-bounded batch doubles up to this


class _Scan:
    def __init__(
        self,
        fs: FileSystem,
        view: LocalIndexView,
        *,
        short_id: int,
        now: Callable[[], int],
        ignore: IgnoreMatcher | None,
        hash_workers: int,
        batch_size: int,
        batch_bytes: int,
        ignore_permissions: bool,
        progress: ScanProgress | None,
        selection: Selection = (),
        temps_seen: TempsSeen | None = None,
    ) -> None:
        self._fs = fs
        self._selection = selection
        self._view = view
        self._short_id = short_id
        self._now = now
        self._ignore = ignore
        self._workers = hash_workers
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._bytes_in_batch = 0
        self._progress = progress
        self._ignore_perms = ignore_permissions
        self._granularity = max(1, fs.mtime_granularity_ns)
        self._case_insensitive = fs.is_case_insensitive()
        self._problems: list[ScanProblem] = []
        self._walker = Walker(fs, ignore, self._problems, temps_seen)
        # Results in name order; hashing results are futures until resolved.
        self._out: deque[_Outcome | Future[list[_Outcome]]] = deque()
        self._group: list[_HashJob] = []
        self._group_bytes = 0
        self._max_pending = 4 * hash_workers + 16
        self._batch = ScanBatch()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ driver

    def run(self, roots: list[str]) -> Generator[ScanBatch, None, None]:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="p2psync-hash")
        try:
            for root in roots:
                yield from self._join(root)
            self._flush_group()
            yield from self._drain(0)
            self._take_problems()
            if self._batch:
                yield self._batch
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _join(self, root: str) -> Iterator[ScanBatch]:
        """Merge the sorted disk walk with the sorted index entries under ``root``."""
        disk = self._walker.walk(root)
        local = self._local_entries(root)
        item = next(disk, None)
        old = next(local, None)
        out = self._out
        while item is not None or old is not None:
            if old is None or (item is not None and item.name < old.name):
                self._new(item)  # type: ignore[arg-type]
                item = next(disk, None)
            elif item is None or old.name < item.name:
                self._missing(old)
                old = next(local, None)
            else:
                self._pair(item, old)
                item = next(disk, None)
                old = next(local, None)
            if out:
                yield from self._drain(self._max_pending)

    def _local_entries(self, root: str) -> Iterator[LocalFileInfo]:
        below = root + "/"
        for info in self._view.iter_local(root):
            name = info.name
            if root and name != root and not name.startswith(below):
                continue
            if is_internal(name):
                continue
            yield info

    def roots(self, subpaths: Sequence[str] | None) -> list[str]:
        """Distinct subtrees to scan, none inside another, in name order."""
        if subpaths is None:
            return [""]
        wanted: set[str] = set()
        live_dirs: dict[str, bool] = {}  # parent -> a live directory in the index
        for sub in subpaths:
            if sub == "":
                return [""]
            validate_name(sub)
            if is_internal(sub):
                continue
            if self._case_insensitive:
                try:
                    sub = self._fs.real_name(sub)
                except (OSError, UnsafePathError):
                    pass
            wanted.add(self._widen(sub, live_dirs))
        roots: set[str] = set()
        for sub in sorted(wanted, key=len):
            if not is_at_or_below(sub, roots):
                roots.add(sub)
        return sorted(roots)

    def _widen(self, name: str, live_dirs: dict[str, bool]) -> str:
        """Climb to the highest ancestor the index does not know as a live directory.
        ``live_dirs`` remembers the answers: the paths a watcher hands over share a few
        parents (one index read each, not one per path)."""
        while "/" in name:
            parent = name.rpartition("/")[0]
            live = live_dirs.get(parent)
            if live is None:
                known = self._view.get_local(parent)
                live = known is not None and known.is_directory and not known.deleted
                live_dirs[parent] = live
            if live:
                break
            name = parent
        return name

    # ------------------------------------------------------------------ decisions

    def _new(self, item: DiskItem) -> None:
        if not item.ignored:
            self._changed(item, None)

    def _pair(self, item: DiskItem, old: LocalFileInfo) -> None:
        st = item.stat
        if item.ignored:
            if not old.deleted and not old.local_flags & FLAG_IGNORED:
                self._emit(_FILE, self._as_ignored(old))
            return
        if (
            old.deleted
            or old.local_flags & (FLAG_IGNORED | FLAG_NOT_SELECTED)
            or st.type != old.type
        ):
            self._changed(item, old)
        elif st.type == FileType.FILE:
            if (
                old.size == st.size
                and self._same_mtime(old.modified_ns, st)
                and (old.inode == st.inode or not old.inode)
            ):
                if self._perms_differ(old, st):
                    self._emit(
                        _FILE,
                        old.with_(
                            permissions=st.permissions,
                            version=self._bump(old),
                            modified_by=self._short_id,
                            invalid=False,
                            inode=st.inode,
                            sequence=0,
                            local_flags=0,
                        ),
                    )
            else:
                self._submit_hash(item, old)
        elif st.type == FileType.DIRECTORY:
            if self._perms_differ(old, st):
                self._changed(item, old)
        elif st.symlink_target != old.symlink_target:
            self._changed(item, old)

    def _changed(self, item: DiskItem, old: LocalFileInfo | None) -> None:
        st = item.stat
        if st.type == FileType.FILE:
            self._submit_hash(item, old)
            return
        if st.type == FileType.SYMLINK and _SURROGATE.search(st.symlink_target):
            self._emit(_PROBLEM, ScanProblem(item.name, "symlink target is not valid UTF-8"))
            return
        is_link = st.type == FileType.SYMLINK
        info = LocalFileInfo(
            name=item.name,
            type=st.type,  # type: ignore[arg-type]  # the walker drops type None
            size=0,
            permissions=st.permissions,
            modified_ns=st.mtime_ns,
            modified_by=self._short_id,
            no_permissions=self._ignore_perms or is_link,
            version=self._bump(old),
            symlink_target=st.symlink_target if is_link else "",
            inode=st.inode,
        )
        self._emit(_FILE, info)

    def _missing(self, old: LocalFileInfo) -> None:
        if old.deleted or old.local_flags & FLAG_NOT_SYNCED_HERE:
            return
        name = old.name
        walker = self._walker
        if is_at_or_below(name, walker.unreadable):
            return
        if is_at_or_below(name, walker.ignored_dirs) or (
            self._ignore is not None and self._ignore.is_ignored(name)
        ):
            if not old.local_flags & FLAG_IGNORED:
                self._emit(_FILE, self._as_ignored(old))
            return
        if self._case_insensitive and self._is_case_clash(name):
            return
        if not is_selected(name, self._selection):
            self._emit(_FILE, as_not_selected(old))
            return
        self._emit(
            _FILE,
            old.with_(
                deleted=True,
                invalid=False,
                size=0,
                block_size=0,
                blocks=(),
                symlink_target="",
                version=self._bump(old),
                modified_by=self._short_id,
                inode=0,
                sequence=0,
                local_flags=0,
            ),
        )

    def _is_case_clash(self, name: str) -> bool:
        """On a case-insensitive fs, is missing ``name`` really held by a live case twin?

        The walk saw the entry under another case (``foo`` for index ``Foo``). If the
        index also has that other spelling alive, both index entries map to one file:
        deleting either would lose data on case-sensitive peers, so report and keep
        both. Otherwise it is a case-only rename: tombstone the old spelling.
        """
        try:
            self._fs.lstat(name)
            real = self._fs.real_name(name)
        except (OSError, UnsafePathError):
            return False
        if real == name:
            # Created after its directory was listed: the next scan sees it.
            self._emit(_PROBLEM, ScanProblem(name, "changed during scan; will rescan"))
            return True
        twin = self._view.get_local(real)
        if twin is None or twin.deleted:
            return False
        self._emit(
            _PROBLEM,
            ScanProblem(
                name, f"case clash: the filesystem holds {real!r} under this name (both indexed)"
            ),
        )
        return True

    # ------------------------------------------------------------------ hashing

    def _submit_hash(self, item: DiskItem, old: LocalFileInfo | None) -> None:
        assert self._pool is not None
        job = (item, old, self._bump(old))  # `now` is read here, on the scanning thread
        size = item.stat.size
        if size <= _SMALL_FILE:
            self._group.append(job)
            self._group_bytes += size
            if len(self._group) >= _GROUP_FILES or self._group_bytes >= _GROUP_BYTES:
                self._flush_group()
            return
        self._flush_group()
        self._out.append(self._pool.submit(self._hash_jobs, [job]))

    def _flush_group(self) -> None:
        if self._group:
            hashed: Future[list[_Outcome]] = Future()
            hashed.set_result(self._hash_jobs(self._group))
            self._out.append(hashed)
            self._group = []
            self._group_bytes = 0

    def _hash_jobs(self, jobs: list[_HashJob]) -> list[_Outcome]:
        with self._fs.cached_dirs():  # a group's files mostly share their directories
            return [self._hash(*job) for job in jobs]

    def _hash(self, item: DiskItem, old: LocalFileInfo | None, version: vector.Vector) -> _Outcome:
        """Hash one file and build its entry (or a problem); any thread."""
        st = item.stat
        block_size = block_size_for(st.size, old.block_size if old is not None else 0)
        try:
            blocks = hash_file(self._fs, item.name, st, block_size)
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            blocks = None
        except OSError as exc:
            return _PROBLEM, ScanProblem(item.name, f"cannot read: {exc.strerror or exc}")
        if blocks is None:
            return _PROBLEM, ScanProblem(item.name, "changed during scan; will rescan")
        if self._progress is not None:
            self._progress.hashed(st.size)
        if (
            old is not None
            and old.is_file
            and not old.deleted
            and not old.local_flags & (FLAG_IGNORED | FLAG_NOT_SELECTED)
            and old.blocks == blocks
            and not self._perms_differ(old, st)
            and self._same_mtime(old.modified_ns, st)
        ):
            return _REFRESH, old.with_(inode=st.inode, sequence=0)
        info = LocalFileInfo(
            name=item.name,
            type=FileType.FILE,
            size=st.size,
            permissions=st.permissions,
            modified_ns=st.mtime_ns,
            modified_by=self._short_id,
            no_permissions=self._ignore_perms,
            version=version,
            block_size=block_size,
            blocks=blocks,
            inode=st.inode,
        )
        return _FILE, info

    # ------------------------------------------------------------------ output

    def _emit(self, kind: int, payload: LocalFileInfo | ScanProblem) -> None:
        self._flush_group()  # keep name order: pending hashes come first
        self._out.append((kind, payload))

    def _drain(self, keep: int) -> Iterator[ScanBatch]:
        """Move finished results, in order, into batches; block while more than ``keep``
        results are queued (bounds memory and hashing look-ahead)."""
        out = self._out
        while out:
            head = out[0]
            if isinstance(head, Future):
                if len(out) <= keep and not head.done():
                    return
                outcomes = head.result()
            else:
                outcomes = [head]
            out.popleft()
            for kind, payload in outcomes:
                if kind == _FILE:
                    self._batch.files.append(payload)  # type: ignore[arg-type]
                    self._bytes_in_batch += payload.size  # type: ignore[union-attr]
                elif kind == _REFRESH:
                    self._batch.refreshed.append(payload)  # type: ignore[arg-type]
                else:
                    self._batch.problems.append(payload)  # type: ignore[arg-type]
                if (
                    len(self._batch.files) + len(self._batch.refreshed) >= self._batch_size
                    or self._bytes_in_batch >= self._batch_bytes
                ):
                    self._take_problems()
                    if self._bytes_in_batch >= self._batch_bytes:
                        # the first batch goes out early; later ones grow, so a folder of
                        # terabytes is not stored (and sent) in thousands of tiny batches
                        self._batch_bytes = min(2 * self._batch_bytes, _MAX_BATCH_BYTES)
                    batch, self._batch = self._batch, ScanBatch()
                    self._bytes_in_batch = 0
                    yield batch

    def _take_problems(self) -> None:
        if self._problems:
            self._batch.problems.extend(self._problems)
            self._problems.clear()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _as_ignored(old: LocalFileInfo) -> LocalFileInfo:
        """Known entry now ignored: same version, announced invalid, so a valid copy
        elsewhere wins and nothing is deleted on peers."""
        return old.with_(invalid=True, local_flags=old.local_flags | FLAG_IGNORED, sequence=0)

    def _bump(self, old: LocalFileInfo | None) -> vector.Vector:
        return vector.update(old.version if old is not None else (), self._short_id, self._now())

    def _same_mtime(self, old_ns: int, st: FileStat) -> bool:
        g = self._granularity
        return old_ns == st.mtime_ns or (g > 1 and old_ns // g == st.mtime_ns // g)

    def _perms_differ(self, old: LocalFileInfo, st: FileStat) -> bool:
        return not self._ignore_perms and (old.permissions & 0o777) != st.permissions


def as_not_selected(entry: LocalFileInfo) -> LocalFileInfo:
    """``entry`` left out by selective sync: same version, announced invalid, so a valid
    copy elsewhere stays global and nothing is deleted on peers."""
    return entry.with_(invalid=True, local_flags=NOT_SELECTED, inode=0, sequence=0)
