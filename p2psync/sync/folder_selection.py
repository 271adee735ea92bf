"""Selective sync on a running folder: the selection applied when it changed (the work
itself is ``selection_apply.py``), pages of needed items without the names it leaves
out, and a selected directory renamed here or by a peer followed by the selection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from ..protocol.fileinfo import FileInfo
from ..scanner.scan import FLAG_NOT_SELECTED, FLAG_NOT_SYNCED_HERE
from ..selection import Selection, follow_renames, is_at, is_selected
from .folder_parts import FolderParts
from .selection_apply import forget_selected, trim
from .selection_renames import followed_selection

log = logging.getLogger("p2psync.sync.folder")

RENAME_SCANS = 4  # scans a selected directory's deletion waits for its new name
RENAME_NAMES_MAX = 100_000  # names a scan remembers to follow a selected directory's rename
APPLY_RETRIES = 3  # selection applications again after rescanning what changed meanwhile

ChangeConfig = Callable[[Callable[..., Any]], Awaitable[Any]]


class FolderSelection:
    def __init__(self, parts: FolderParts, change_config: ChangeConfig | None) -> None:
        self.id = parts.id
        self.index = parts.index
        self._parts = parts
        self._db = parts.db
        self.status = parts.report.status
        self._change_config = change_config  # saves and applies a config edit (renames)
        self._due = True  # apply the selection at the next pull
        self._retries = 0
        # a scan's deletions and additions, while a selection may follow a rename
        self._gone: dict[str, bytes | None] = {}
        self._new: dict[str, bytes | None] = {}
        self._rename_scans = 0

    def changed(self) -> None:
        """The selection changed: apply it at the next pull."""
        self._due = True
        self._retries = 0

    # ---- applying ----------------------------------------------------------------
    async def apply(
        self, selection: Selection, note_paths: Callable[[Sequence[str]], None]
    ) -> None:
        """After a selection change (or at start): names selected again are needed again,
        and in-sync local copies left out are removed (selection_apply.py). Paths that
        changed meanwhile go to ``note_paths`` (scanned, then applied again)."""
        if not self._due:
            return
        self._due = False
        parts = self._parts
        flagged = await self._db(self.index.count_local_flagged, self.id, FLAG_NOT_SELECTED)
        forgotten = (
            await self._db(forget_selected, self.index, self.id, selection) if flagged else 0
        )
        trimmed = await self._db(
            trim, self.index, self.id, parts.fs, selection, parts.puller.commit.check_unchanged
        )
        self.status.selection_kept = trimmed.kept
        self.status.selection_kept_count = trimmed.kept_count
        for name, why in list(trimmed.kept.items())[:20]:
            log.info("%s: %r is outside the selection but kept here: %s", self.id, name, why)
        if trimmed.rescan and self._retries < APPLY_RETRIES:
            self._retries += 1
            self._due = True  # again after the scan of what changed
            note_paths(trimmed.rescan)
        if forgotten or trimmed.removed:
            parts.server.clear_cache()
            parts.local_sequence.set(
                await self._db(self.index.max_sequence, self.id, parts.local.raw)
            )

    async def leave_out(self, page: list[FileInfo], selection: Selection) -> list[FileInfo]:
        """``page`` without the names the selection leaves out and this device does not
        hold: those are kept as "not selected" (recorded with the round's flush). A file
        still here outside the selection (kept: a local change) syncs as before."""
        if not selection:
            return page
        out = [fi for fi in page if is_selected(fi.name, selection)]
        if len(out) == len(page):
            return page
        left = [fi for fi in page if not is_selected(fi.name, selection)]
        locals_ = await self._db(self.index.get_local_many, self.id, [fi.name for fi in left])
        for fi in left:
            local = locals_.get(fi.name)
            if local is None or local.deleted or local.local_flags & FLAG_NOT_SYNCED_HERE:
                self._parts.puller.keep_not_selected(fi)
            else:
                out.append(fi)
        return out

    # ---- following renames ---------------------------------------------------------
    def note_stored(self, stored: Sequence[FileInfo], selection: Selection) -> None:
        """Remember what a scan stored, in case a selected directory was renamed."""
        if selection and len(self._gone) + len(self._new) < RENAME_NAMES_MAX:
            for f in stored:  # names and types: a tombstone holds no content to compare
                key = None if f.is_directory else b""
                if f.deleted and any(is_at(f.name, p) for p in selection):
                    self._gone[f.name] = key
                elif not f.deleted and not f.invalid:
                    self._new[f.name] = key

    async def follow_renames(self, selection: Selection) -> None:
        """A selected directory renamed here: the selection follows its new name."""
        gone, new = self._gone, self._new
        if not gone or self._change_config is None:
            self._gone, self._new = {}, {}
            return
        # a rename's two halves may be stored by two scans (the watcher's events):
        # keep them for a few scans before forgetting them
        self._rename_scans += 1
        if self._rename_scans >= RENAME_SCANS:
            self._gone, self._new, self._rename_scans = {}, {}, 0
        moved = follow_renames(selection, gone, new)
        if moved == selection:
            return
        self._gone, self._new, self._rename_scans = {}, {}, 0
        log.info("%s: selected directories renamed; the selection is now %s", self.id, moved)
        await self._move(selection, moved)

    async def follow_remote_renames(self, selection: Selection) -> bool:
        """A selected directory renamed by a peer: the selection follows its new name
        before the pull applies the move (selection_renames.py). Whether it moved (then
        apply the new selection before pulling)."""
        if self._change_config is None:
            return False
        moved = await self._db(followed_selection, self.index, self.id, selection)
        if moved == selection:
            return False
        log.info("%s: a peer renamed selected directories; now selected: %s", self.id, moved)
        await self._move(selection, moved)
        return True

    async def _move(self, selection: Selection, moved: Selection) -> None:
        """Save the selection ``moved`` in place of ``selection`` (unless the user changed
        it meanwhile); the runner hears of the change and calls ``changed``."""
        assert self._change_config is not None
        folder_id = self.id

        def edit(cfg: Any) -> Any:
            fc = cfg.folder(folder_id)
            if fc is None or fc.selected != selection:
                return cfg
            return cfg.with_folder(replace(fc, selected=moved))

        await self._change_config(edit)
