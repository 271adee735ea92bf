"""Which folder names a watchdog event touches: shared by the in-process watcher and the
watcher child process (so it imports nothing heavier than watchdog)."""

from __future__ import annotations

import os

from watchdog.events import (
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from p2psync.watcher.aggregate import BridgeItem, is_watch_internal, relative_name

# What we ask watchdog for. Leaving out "opened" / "closed without write" keeps our own
# scanner's reads from echoing back as changes; directory "modified" events only repeat
# that an entry inside changed, which that entry's own event already says.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileAttribEvent,
    DirAttribEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileMovedEvent,
    DirMovedEvent,
]
_EVENT_TYPES = frozenset(cls.event_type for cls in EVENT_FILTER)


def names_for_event(root: str, event: FileSystemEvent) -> BridgeItem:
    """Folder-relative names a watchdog event touches (a move gives source and destination).

    ``root`` is the absolute folder path the watch was scheduled on. Internal names and
    uninteresting events give ``()``; the root itself deleted or moved gives None.
    """
    if event.event_type not in _EVENT_TYPES:
        return ()
    if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
        return ()
    names: list[str] = []
    for raw in (event.src_path, event.dest_path):
        if not raw:
            continue
        name = relative_name(root, os.fsdecode(raw), os.sep)
        if name is None or is_watch_internal(name):
            continue
        if name == "":
            if event.event_type in (EVENT_TYPE_DELETED, EVENT_TYPE_MOVED):
                return None
            continue
        names.append(name)
    return tuple(names)
