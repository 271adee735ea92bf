"""The SQLite index store: every device's FileInfos per folder, global versions, need."""

from .global_reads import NeedCursor
from .reads import BlockLocation, Counts
from .store import IndexStore

__all__ = ["BlockLocation", "Counts", "IndexStore", "NeedCursor"]
