"""The pull: how needed items from peers become files on this disk, in named stages.

==============  =====================  ===================================================
stage           module                 what it does
==============  =====================  ===================================================
plan            plan.py, round.py      what a page of needed items becomes, in what order
fetch           fetch.py               blocks from this device first, then from peers
                local_renames.py       (policy) a needed deletion's file renamed into place
assemble        assemble.py,           the temp file, every block verified before it is
and verify      block_io.py            written, sealed with size, mode and mtime
commit          commit.py              space claims, never clobber, version or conflict
                                       copy, fsync, atomic rename
record          record.py              the index records, noted before the rename,
                                       stored in batches
==============  =====================  ===================================================

``Puller`` (puller.py) joins the stages for one folder; a big file runs through them on
its own, small files in batches (small_files.py, a policy of every stage), and items
without data (deletions, directories, symlinks: entries.py) only check and commit.
Tuning numbers are one ``PullTunings`` value passed to the puller.
"""

from .base import (
    DISK_FULL,
    INTERNAL_NAME,
    BlockSource,
    ItemSkipped,
    PullStats,
    SourcesFor,
    SourcesForMany,
    WaitForSpace,
)
from .puller import Puller
from .round import PullRound
from .small_files import BatchResult
from .tunings import DEFAULT_TUNINGS, MIN_FREE_BYTES, PullTunings

__all__ = [
    "DEFAULT_TUNINGS",
    "DISK_FULL",
    "INTERNAL_NAME",
    "MIN_FREE_BYTES",
    "BatchResult",
    "BlockSource",
    "ItemSkipped",
    "PullRound",
    "PullStats",
    "PullTunings",
    "Puller",
    "SourcesFor",
    "SourcesForMany",
    "WaitForSpace",
]
