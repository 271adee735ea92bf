"""The SQLite index store: every device's FileInfos per folder, global versions, need."""

from .store import BlockLocation, Counts, IndexStore, NeedCursor

__all__ = ["BlockLocation", "Counts", "IndexStore", "NeedCursor"]
