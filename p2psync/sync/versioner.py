"""File versioning: what happens to the old copy when the puller replaces or deletes a file.

The archive lives in ``.p2pversions/`` at the folder root and mirrors the folder's
directories, as Syncthing's ``.stversions`` does:

- *trashcan* keeps the plain name (``.p2pversions/dir/a.txt``); a newer copy replaces an
  older one, and the copy's mtime is set to the archive time so ``clean`` can age it out;
- *simple* and *staggered* tag the name with the archive time in **UTC**
  (``.p2pversions/dir/a~20250301-142233.txt``, Syncthing's tag format; Syncthing uses
  local time, we use UTC so tags never repeat or jump when DST changes) and keep the
  file's own mtime.

Every operation goes through the FileSystem interface, which never follows a symlink:
if the archive directory (or a directory inside it) is a symlink, archiving is refused
with UnsafePathError and the user's file stays where it is (CVE-2017-1000420: a peer made
Syncthing write through a versioned symlink). Symlinks and directories are never
versioned. Once a file has been moved into the archive nothing raises any more (setting
its mtime, fsync, pruning are best effort, logged): an error after the move would make
the caller rescan and announce a deletion the user never made.

Which versions to drop is decided by pure functions taking ``now`` (``*_to_remove``).
Everything here blocks: call it from a worker thread.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..config import VersioningConfig
from ..errors import ConfigError, NotFoundError, UnsafePathError, UsageError
from ..fs.base import FileStat, FileSystem
from ..fs.internal import VERSIONS_DIR, is_internal, is_temp_base, temp_name
from ..protocol.fileinfo import FileType
from ..protocol.names import is_valid_name, validate_name
from .plan import split_extension

log = logging.getLogger("p2psync.sync.versioner")

TAG_FORMAT = "%Y%m%d-%H%M%S"
_TAGGED_RE = re.compile(r"^(?P<stem>.+)~(?P<tag>\d{8}-\d{6})(?P<ext>\.[^.]*)?$")
DAY_S = 86_400
# Staggered thinning, Syncthing's table: (spacing, applies while younger than) in seconds.
# The last interval's limit is the configured maximum age (0 = forever).
STAGGERED_INTERVALS: tuple[tuple[int, int], ...] = ((30, 3600), (3600, DAY_S), (DAY_S, 30 * DAY_S))
STAGGERED_LAST_SPACING = 7 * DAY_S
_COPY_CHUNK = 1 << 20


class Versioner(Protocol):
    def archive(self, name: str) -> bool:
        """Move the user file ``name`` into the archive if this kind of versioning keeps
        it; return True if it was moved. Blocking: called from a worker thread."""
        ...


class CleaningVersioner(Versioner, Protocol):
    """A versioner the folder loop also asks, periodically, to drop expired versions."""

    def clean(self, now: float | None = None) -> int:
        """Remove the versions this kind no longer keeps; return how many were removed."""
        ...


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One archived copy. ``name`` is the original folder-relative name, ``archive_name``
    the copy's folder-relative name (under ``.p2pversions/``); ``version_time`` (UTC) is
    when it was archived: the tag, or the mtime of an untagged (trashcan) copy."""

    name: str
    version_time: dt.datetime
    size: int
    archive_name: str

    @property
    def timestamp(self) -> float:
        return self.version_time.timestamp()


# ---------------------------------------------------------------------------- names


def version_tag(when: float) -> str:
    """``YYYYMMDD-HHMMSS`` of the Unix time ``when``, in UTC."""
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime(TAG_FORMAT)


def archive_name_for(name: str, when: float | None) -> str:
    """Where ``name`` goes in the archive: tagged with ``when``, or plain if it is None.

    ``dir/a.txt`` → ``.p2pversions/dir/a~20250301-142233.txt``; a dotfile or a name
    without extension gets the tag at the end (``.bashrc~20250301-142233``).
    """
    if when is None:
        return f"{VERSIONS_DIR}/{name}"
    directory, base = posixpath.split(name)
    stem, ext = split_extension(base)
    tagged = f"{stem}~{version_tag(when)}{ext}"
    return posixpath.join(VERSIONS_DIR, directory, tagged)


def parse_archive_name(archive_name: str) -> tuple[str, dt.datetime | None]:
    """(original name, tag time in UTC or None if untagged) of a name under the archive.

    The last ``~YYYYMMDD-HHMMSS`` right before the extension is the tag, so originals
    that contain ``~`` or tag-like text themselves round-trip.
    """
    prefix = VERSIONS_DIR + "/"
    if not archive_name.startswith(prefix):
        raise ValueError(f"{archive_name!r} is not under {VERSIONS_DIR}/")
    directory, base = posixpath.split(archive_name[len(prefix) :])
    match = _TAGGED_RE.match(base)
    if match is None:
        return archive_name[len(prefix) :], None
    try:
        when = dt.datetime.strptime(match["tag"], TAG_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:  # e.g. month 13: not a tag after all
        return archive_name[len(prefix) :], None
    original = match["stem"] + (match["ext"] or "")
    return posixpath.join(directory, original), when


# ---------------------------------------------------------------------------- decisions


def _by_name(versions: Iterable[VersionEntry]) -> dict[str, list[VersionEntry]]:
    groups: dict[str, list[VersionEntry]] = {}
    for v in versions:
        groups.setdefault(v.name, []).append(v)
    for group in groups.values():
        group.sort(key=lambda v: (v.timestamp, v.archive_name))
    return groups


def trashcan_to_remove(
    versions: Iterable[VersionEntry], now: float, cleanout_days: int
) -> list[VersionEntry]:
    """Copies archived more than ``cleanout_days`` ago (0 keeps everything)."""
    if cleanout_days <= 0:
        return []
    limit = now - cleanout_days * DAY_S
    return [v for v in versions if v.timestamp < limit]


def simple_to_remove(
    versions: Iterable[VersionEntry], now: float, keep: int, cleanout_days: int = 0
) -> list[VersionEntry]:
    """Per original name, all but the ``keep`` newest (at least one is kept), plus any
    older than ``cleanout_days`` (0: no age limit)."""
    keep = max(keep, 1)
    remove: list[VersionEntry] = []
    for group in _by_name(versions).values():
        surplus = group[: max(0, len(group) - keep)]
        expired = trashcan_to_remove(group[len(surplus) :], now, cleanout_days)
        remove.extend(surplus + expired)
    return remove


def staggered_to_remove(
    versions: Iterable[VersionEntry], now: float, max_age_days: int
) -> list[VersionEntry]:
    """Syncthing's thinning, per original name: versions older than ``max_age_days``
    (0 = no limit) go; of the rest, walking from oldest to newest, a version is kept only
    if it is at least one spacing newer than the last kept one, where the spacing depends
    on its age — 30 s in the first hour, 1 h in the first day, 1 day in the first 30 days,
    1 week after that. So the oldest version of each slot survives."""
    max_age = max_age_days * DAY_S
    remove: list[VersionEntry] = []
    for group in _by_name(versions).values():
        last_kept_age: float | None = None
        for v in group:
            age = now - v.timestamp
            if max_age > 0 and age > max_age:
                remove.append(v)
                continue
            if last_kept_age is None:
                last_kept_age = age
                continue
            spacing = next(
                (s for s, limit in STAGGERED_INTERVALS if age < limit), STAGGERED_LAST_SPACING
            )
            if last_kept_age - age < spacing:
                remove.append(v)
                continue
            last_kept_age = age
    return remove


# ---------------------------------------------------------------------------- archive walking


def _lstat_or_none(fs: FileSystem, name: str) -> FileStat | None:
    try:
        return fs.lstat(name)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _check_not_symlink(st: FileStat, path: str) -> None:
    if st.type == FileType.SYMLINK:
        raise UnsafePathError(
            f"the versions directory {path!r} is a symlink (to {st.symlink_target!r}); "
            "refusing to use it, nothing is written outside the folder"
        )


def _entry(archive_name: str, st: FileStat) -> VersionEntry | None:
    original, when = parse_archive_name(archive_name)
    if not is_valid_name(original):
        return None
    if when is None:
        when = dt.datetime.fromtimestamp(st.mtime_ns / 1e9, dt.UTC)
    return VersionEntry(original, when, st.size, archive_name)


def _versions_in(fs: FileSystem, dirname: str) -> tuple[list[VersionEntry], list[str]]:
    """Archived files directly in ``dirname`` and its real subdirectories (symlinks,
    temp files and names the fs cannot address are skipped)."""
    files: list[VersionEntry] = []
    subdirs: list[str] = []
    for e in fs.scandir(dirname):
        path = f"{dirname}/{e.name}"
        if not is_valid_name(path) or is_temp_base(e.name):
            continue
        if e.stat.type == FileType.DIRECTORY:
            subdirs.append(path)
        elif e.stat.type == FileType.FILE and (entry := _entry(path, e.stat)) is not None:
            files.append(entry)
    return files, subdirs


def _archive_root_exists(fs: FileSystem) -> bool:
    st = _lstat_or_none(fs, VERSIONS_DIR)
    if st is None:
        return False
    _check_not_symlink(st, VERSIONS_DIR)
    if st.type != FileType.DIRECTORY:
        raise NotADirectoryError(
            errno.ENOTDIR, "versions directory is not a directory", VERSIONS_DIR
        )
    return True


def _walk_archive(fs: FileSystem) -> Iterator[tuple[str, list[VersionEntry]]]:
    """(directory, its versions) for every directory of the archive, deepest first, so a
    caller may remove a directory once it has been yielded. Iterative: names may nest
    deeper than Python's recursion limit."""
    if not _archive_root_exists(fs):
        return
    stack: list[tuple[str, list[VersionEntry] | None]] = [(VERSIONS_DIR, None)]
    while stack:
        dirname, files = stack.pop()
        if files is not None:  # its subdirectories are done
            yield dirname, files
            continue
        files, subdirs = _versions_in(fs, dirname)
        stack.append((dirname, files))
        stack.extend((sub, None) for sub in subdirs)


def list_versions(fs: FileSystem, name: str | None = None) -> list[VersionEntry]:
    """Every archived copy, or those of the original ``name``; sorted by name, then time."""
    if name is None:
        found = [v for _, files in _walk_archive(fs) for v in files]
    else:
        validate_name(name)
        directory = posixpath.dirname(archive_name_for(name, None))
        if not _archive_root_exists(fs):
            return []
        st = _lstat_or_none(fs, directory)
        if st is None or st.type != FileType.DIRECTORY:
            return []
        found = [v for v in _versions_in(fs, directory)[0] if v.name == name]
    return sorted(found, key=lambda v: (v.name, v.timestamp, v.archive_name))


# ------------------------------------------------------------------------ moving into the archive


def _ensure_archive_dir(fs: FileSystem, dirname: str) -> None:
    """Create ``dirname`` (under the archive) component by component, refusing symlinks.

    A plain file in the way inside the archive (a trashcan copy of ``dir`` when ``dir/x``
    is archived now) is moved aside under its tagged name, never deleted. BasicFS also
    refuses symlinked parents in the final rename, so a swap after this check is caught.
    """
    parts = dirname.split("/")
    created: list[str] = []
    for i in range(1, len(parts) + 1):
        path = "/".join(parts[:i])
        st = _lstat_or_none(fs, path)
        if st is None:
            try:
                fs.mkdir(path)
                created.append(path)
            except FileExistsError:
                pass
            st = fs.lstat(path)
        _check_not_symlink(st, path)
        if st.type == FileType.FILE and path != VERSIONS_DIR:
            aside = archive_name_for(path[len(VERSIONS_DIR) + 1 :], st.mtime_ns / 1e9)
            log.info("versions: moving %s aside to %s to make room for a directory", path, aside)
            fs.rename(path, aside)
            fs.mkdir(path)
            st = fs.lstat(path)
            _check_not_symlink(st, path)
        if st.type != FileType.DIRECTORY:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory in the versions archive", path)
    # A new directory's name is durable only once its parent is synced: without this a
    # power cut after the file's old name was replaced lost the archived version with
    # the directory that held it (tests/powerloss, versioning move).
    failed = fs.fsync_dirs(sorted({posixpath.dirname(p) for p in created}))
    if failed:
        raise failed[0][1]


def _best_effort(what: str, action: Callable[[], object]) -> None:
    """Run a step after the file is already archived: report failure, never raise it."""
    try:
        action()
    except (OSError, UnsafePathError) as exc:
        log.warning("versions: %s failed (the file is archived): %s", what, exc)


class _ArchivingVersioner:
    """Archive mechanics: tagged copies, all kept. Subclasses choose the destination and
    what to drop."""

    def __init__(self, fs: FileSystem, *, now: Callable[[], float] = time.time) -> None:
        self._fs = fs
        self._now = now
        # Keeps clean() from removing an empty directory between archive()'s mkdir and rename.
        self._dirs_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fs!r})"

    def _destination(self, name: str, when: float) -> str:
        return archive_name_for(name, when)

    def _after_archive(self, name: str, dest: str, when: float) -> None:
        """Hook run (best effort) after ``name`` has been moved to ``dest``."""

    def _to_remove(self, versions: list[VersionEntry], now: float) -> list[VersionEntry]:
        return []

    def archive(self, name: str) -> bool:
        if is_internal(name):
            raise UnsafePathError(f"{name!r} is one of p2psync's own names; it is never versioned")
        st = _lstat_or_none(self._fs, name)
        if st is None or st.type != FileType.FILE:
            return False  # nothing there, a directory, or a symlink: never versioned
        when = self._now()
        dest = self._destination(name, when)
        with self._dirs_lock:
            _ensure_archive_dir(self._fs, posixpath.dirname(dest))
            existing = _lstat_or_none(self._fs, dest)
            if existing is not None and existing.type == FileType.DIRECTORY:
                dest = archive_name_for(name, when)  # trashcan: a directory holds the plain name
            self._fs.rename(name, dest)
        log.info("versions: archived %s as %s", name, dest)
        _best_effort(
            f"fsync of {posixpath.dirname(dest)}",
            lambda: self._fs.fsync_dir(posixpath.dirname(dest)),
        )
        _best_effort(f"pruning versions of {name}", lambda: self._after_archive(name, dest, when))
        return True

    def _remove_versions(self, doomed: Iterable[VersionEntry]) -> int:
        removed = 0
        for v in doomed:
            try:
                self._fs.remove(v.archive_name)
            except FileNotFoundError:
                continue
            removed += 1
            log.debug("versions: removed %s", v.archive_name)
        return removed

    def clean(self, now: float | None = None) -> int:
        """Drop expired versions directory by directory and remove emptied directories."""
        now = self._now() if now is None else now
        removed = 0
        for dirname, files in _walk_archive(self._fs):
            removed += self._remove_versions(self._to_remove(files, now))
            if dirname == VERSIONS_DIR:
                continue
            with self._dirs_lock:
                try:
                    self._fs.rmdir(dirname)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        raise
        return removed


class NoVersioning:
    """Versioning "none": old copies are simply replaced or deleted."""

    def archive(self, name: str) -> bool:
        return False

    def clean(self, now: float | None = None) -> int:
        return 0


class KeepAllVersioning(_ArchivingVersioner):
    """Tagged copies, never removed: where a receive-only revert moves local files when
    the folder has no versioning of its own (nothing a revert drops is lost)."""


class TrashcanVersioning(_ArchivingVersioner):
    """Keeps the last replaced or deleted copy of each file under its own name; ``clean``
    drops copies archived more than ``cleanout_days`` ago (0 = keep forever)."""

    def __init__(
        self, fs: FileSystem, cleanout_days: int = 0, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(fs, now=now)
        self.cleanout_days = cleanout_days

    def _destination(self, name: str, when: float) -> str:
        return archive_name_for(name, None)

    def _after_archive(self, name: str, dest: str, when: float) -> None:
        if dest == archive_name_for(name, None):  # untagged: the mtime is its archive time
            self._fs.set_mtime(dest, int(when * 1e9))

    def _to_remove(self, versions: list[VersionEntry], now: float) -> list[VersionEntry]:
        return trashcan_to_remove(versions, now, self.cleanout_days)


class SimpleVersioning(_ArchivingVersioner):
    """Keeps the ``keep`` newest tagged copies of each file (and, if ``cleanout_days`` is
    set, none older than that, as Syncthing's simple versioner)."""

    def __init__(
        self,
        fs: FileSystem,
        keep: int = 5,
        *,
        cleanout_days: int = 0,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(fs, now=now)
        self.keep = keep
        self.cleanout_days = cleanout_days

    def _after_archive(self, name: str, dest: str, when: float) -> None:
        self._remove_versions(self._to_remove(list_versions(self._fs, name), when))

    def _to_remove(self, versions: list[VersionEntry], now: float) -> list[VersionEntry]:
        return simple_to_remove(versions, now, self.keep, self.cleanout_days)


class StaggeredVersioning(_ArchivingVersioner):
    """Keeps tagged copies thinned with age (see ``staggered_to_remove``), none older
    than ``max_age_days`` (0 = forever)."""

    def __init__(
        self, fs: FileSystem, max_age_days: int = 365, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(fs, now=now)
        self.max_age_days = max_age_days

    def _after_archive(self, name: str, dest: str, when: float) -> None:
        self._remove_versions(self._to_remove(list_versions(self._fs, name), when))

    def _to_remove(self, versions: list[VersionEntry], now: float) -> list[VersionEntry]:
        return staggered_to_remove(versions, now, self.max_age_days)


def make_versioner(
    fs: FileSystem, config: VersioningConfig, *, now: Callable[[], float] = time.time
) -> CleaningVersioner:
    """The versioner a folder's config asks for."""
    if config.type == "none":
        return NoVersioning()
    if config.type == "trashcan":
        return TrashcanVersioning(fs, config.cleanout_days, now=now)
    if config.type == "simple":
        return SimpleVersioning(fs, config.keep, cleanout_days=config.cleanout_days, now=now)
    if config.type == "staggered":
        return StaggeredVersioning(fs, config.max_age_days, now=now)
    raise ConfigError(f"unknown versioning type {config.type!r}")


# ---------------------------------------------------------------------------- restore


def _pick(versions: list[VersionEntry], name: str, at: dt.datetime | None) -> VersionEntry:
    if not versions:
        raise NotFoundError(f"no archived versions of {name!r}")
    if at is None:
        return versions[-1]
    limit = at.timestamp()  # a naive ``at`` is local time
    candidates = [v for v in versions if v.timestamp <= limit]
    if not candidates:
        oldest = versions[0].version_time.isoformat()
        raise NotFoundError(
            f"no version of {name!r} at or before {at.isoformat()}; the oldest is from {oldest}"
        )
    return candidates[-1]


def _copy_file(fs: FileSystem, src: str, dst: str) -> None:
    """Copy ``src`` to the new file ``dst`` (created exclusively), with its mode and mtime."""
    with fs.open_read(src) as reader:
        st = reader.stat()
        with fs.open_write(dst, exclusive=True) as writer:
            try:
                offset = 0
                while chunk := reader.read_at(offset, _COPY_CHUNK):
                    writer.write_at(offset, chunk)
                    offset += len(chunk)
                writer.fsync()
            except BaseException:
                fs.remove(dst)
                raise
    try:
        fs.chmod(dst, st.permissions)
        fs.set_mtime(dst, st.mtime_ns)
    except BaseException:
        fs.remove(dst)
        raise


def restore(
    fs: FileSystem,
    name: str,
    at: dt.datetime | None = None,
    *,
    versioner: Versioner,
    now: Callable[[], float] = time.time,
) -> str:
    """Put an archived version of ``name`` back; return the archive name restored.

    Restores the newest version, or the newest archived at or before ``at``. The version
    is copied (it stays in the archive) to a temp file next to ``name``; the file now at
    ``name``, if any, is archived through ``versioner`` (or, if that kind keeps nothing,
    as a tagged copy) so nothing is lost; then the temp file is renamed into place.
    """
    validate_name(name)
    if is_internal(name):
        raise UsageError(f"{name!r} is one of p2psync's own names")
    chosen = _pick(list_versions(fs, name), name, at)
    _file_or_nothing_at(fs, name)
    parent = posixpath.dirname(name)
    if parent:
        fs.makedirs(parent)
    tmp = temp_name(name)
    try:
        _copy_file(fs, chosen.archive_name, tmp)
    except FileExistsError as exc:
        raise UsageError(
            f"{name!r} is being written by the puller ({tmp} exists); try again later"
        ) from exc
    try:
        if _file_or_nothing_at(fs, name) and not versioner.archive(name):
            if _lstat_or_none(fs, name) is not None:
                _archive_tagged(fs, name, now())
        fs.rename(tmp, name)
    except BaseException:
        try:
            fs.remove(tmp)
        except OSError:
            pass
        raise
    _best_effort(f"fsync of {parent or 'the folder root'}", lambda: fs.fsync_dir(parent))
    log.info("versions: restored %s from %s", name, chosen.archive_name)
    return chosen.archive_name


def _file_or_nothing_at(fs: FileSystem, name: str) -> bool:
    """True if a regular file is at ``name``, False if nothing; refuse anything else."""
    st = _lstat_or_none(fs, name)
    if st is not None and st.type != FileType.FILE:
        kind = st.type.name.lower() if st.type else "special file"
        raise UsageError(f"{name!r} is a {kind} here; move it away before restoring")
    return st is not None


def _archive_tagged(fs: FileSystem, name: str, when: float) -> None:
    """Archive ``name`` as a tagged copy regardless of the folder's versioning kind."""
    _ArchivingVersioner(fs, now=lambda: when).archive(name)
