"""The puller's names where other modules import them from; the stages live in
``p2psync.sync.pull``."""

from .pull import (
    DISK_FULL,
    INTERNAL_NAME,
    MIN_FREE_BYTES,
    BlockSource,
    ItemSkipped,
    Puller,
    PullStats,
    WaitForSpace,
)

__all__ = [
    "DISK_FULL",
    "INTERNAL_NAME",
    "MIN_FREE_BYTES",
    "BlockSource",
    "ItemSkipped",
    "PullStats",
    "Puller",
    "WaitForSpace",
]
