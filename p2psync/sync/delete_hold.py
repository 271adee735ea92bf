"""The mass-delete hold: pulling waits while peers' changes would delete too much of the
folder, until the user confirms (``needed_deletes.mass_delete_hold`` counts)."""

from __future__ import annotations

import logging

from .folder_parts import FolderParts
from .needed_deletes import mass_delete_hold

log = logging.getLogger("p2psync.sync.folder")


class DeleteHold:
    def __init__(self, parts: FolderParts) -> None:
        self._parts = parts
        self.reason = ""  # why pulling is held, until confirmed ("": it is not)
        self._confirmed = False

    def confirm(self) -> None:
        """The user accepted the deletions that held the folder."""
        self._confirmed = True
        self.reason = ""

    def nothing_to_delete(self) -> None:
        """No deletion is needed: a confirmation does not carry over to later ones."""
        self._confirmed = False

    def clear(self) -> None:
        self.reason = ""

    async def blocked(self, deletes: int) -> bool:
        """Hold pulling if remote changes would delete too much of this folder.

        Deletions whose content is re-created elsewhere by the same change (renames,
        moves) do not count: renaming a large directory is not a mass delete.
        """
        if self._confirmed or deletes == 0:
            self.reason = ""
            return False
        parts, config = self._parts, self._parts.config()
        reason = await parts.db(
            mass_delete_hold,
            parts.index,
            parts.id,
            parts.local.raw,
            deletes,
            config.mass_delete_share,
            config.mass_delete_min_deletes,
        )
        if reason and reason != self.reason:
            log.warning("%s: pulling held: %s", parts.id, reason)
        self.reason = reason
        return bool(reason)
