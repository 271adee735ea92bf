"""Stage *plan*: what a page of needed items becomes, in what order. Pure: no I/O.

Pages of needed items arrive from the index in name order (parents before children).
Of each page:

- directories are applied at once, in order (their children may follow in the page);
- files become units of work (``split_files``): first the renames of needed deletions
  (``pair_renames``), then the small files in batches (``batches``), then every other
  file on its own;
- deletions wait until every page is done and run deepest first (``deletes_in_order``),
  so a directory is empty when its turn comes.

Which items are needed at all, and which version wins, is the index's business
(``IndexStore.iter_need``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ...protocol.fileinfo import FileInfo
from .tunings import PullTunings


def is_small_file(fi: FileInfo, tunings: PullTunings) -> bool:
    """A file the small-file batches take: a regular file of at most ``small_file_max``."""
    return fi.is_file and not fi.deleted and fi.size <= tunings.small_file_max


def batches(files: Sequence[FileInfo], max_files: int, max_bytes: int) -> Iterator[list[FileInfo]]:
    """``files`` cut into batches of at most ``max_files`` files and ``max_bytes`` bytes."""
    batch: list[FileInfo] = []
    size = 0
    for fi in files:
        if batch and (len(batch) >= max_files or size + fi.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(fi)
        size += fi.size
    if batch:
        yield batch


@dataclass
class PagePlan:
    """One page of needed items, sorted by how they are applied."""

    directories: list[FileInfo] = field(default_factory=list)  # now, in order
    files: list[FileInfo] = field(default_factory=list)  # as units of work
    deletes: list[FileInfo] = field(default_factory=list)  # after every page


def plan_page(page: Sequence[FileInfo]) -> PagePlan:
    plan = PagePlan()
    for fi in page:
        if fi.deleted:
            plan.deletes.append(fi)
        elif fi.is_directory:
            plan.directories.append(fi)
        else:
            plan.files.append(fi)
    return plan


def deletes_in_order(deletes: Sequence[FileInfo]) -> list[FileInfo]:
    """Deletions deepest first: the index gives them in name order, children after
    their parent."""
    return list(reversed(deletes))


def pair_renames(
    files: Sequence[FileInfo], rename_sources: dict[bytes, list[FileInfo]]
) -> tuple[list[tuple[FileInfo, FileInfo]], list[FileInfo]]:
    """(new file, needed deletion with the same content) pairs to try as local renames,
    and the other files. Takes each paired deletion out of ``rename_sources``."""
    pairs: list[tuple[FileInfo, FileInfo]] = []
    rest: list[FileInfo] = []
    for fi in files:
        candidates = rename_sources.get(fi.blocks_hash()) if fi.blocks else None
        if candidates:
            pairs.append((fi, candidates.pop()))
        else:
            rest.append(fi)
    return pairs, rest


@dataclass
class FileUnits:
    """A page's files as units of work."""

    small_batches: list[list[FileInfo]]
    big: list[FileInfo]


def split_files(files: Sequence[FileInfo], tunings: PullTunings) -> FileUnits:
    small = [fi for fi in files if is_small_file(fi, tunings)]
    return FileUnits(
        small_batches=list(batches(small, tunings.small_files_per_batch, tunings.batch_bytes)),
        big=[fi for fi in files if not is_small_file(fi, tunings)],
    )
