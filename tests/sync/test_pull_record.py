"""Stage record (sync/pull/record.py): records wait for a flush (one transaction), a
puller that does not defer records each item at once, and noted records are adopted."""

from __future__ import annotations

import trio
from pull_support import FOLDER, REMOTE_SHORT, make_puller, remote_file

from p2psync.fs import FakeFS, write_all
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.sync.pull import Puller
from p2psync.sync.versioner import NoVersioning


async def no_sources(name: str) -> list[object]:
    return []


def test_deferred_records_wait_for_the_flush(index: IndexStore) -> None:
    fs = FakeFS()
    recorder = make_puller(fs, index).recorder
    assert recorder.defer
    fi = remote_file("a.txt", b"a")
    recorder.record(fi, None)
    assert index.get_local(FOLDER, "a.txt") is None
    assert recorder.memo.blocks  # its blocks stay findable until the flush
    sequence = recorder.flush()
    stored = index.get_local(FOLDER, "a.txt")
    assert stored is not None and stored.sequence == sequence
    assert recorder.take_flushed_sequence() == sequence
    assert recorder.take_flushed_sequence() == 0
    assert not recorder.memo.blocks and recorder.flush() == 0


def test_without_deferring_each_record_is_stored_at_once(index: IndexStore) -> None:
    puller = Puller(
        folder=FOLDER,
        fs=FakeFS(),
        index=index,
        versioner=NoVersioning(),
        limiter=trio.CapacityLimiter(1),
        sources_for=no_sources,  # type: ignore[arg-type]
    )
    assert not puller.defer_records
    puller.recorder.record(remote_file("a.txt", b"a"), None)
    assert index.get_local(FOLDER, "a.txt") is not None


def test_an_item_kept_as_not_synced_is_recorded_invalid(index: IndexStore) -> None:
    recorder = make_puller(FakeFS(), index).recorder
    recorder.keep_not_synced(remote_file("CON", b"x"))
    recorder.flush()
    kept = index.get_local(FOLDER, "CON")
    assert kept is not None and kept.invalid


def test_a_noted_record_is_adopted_only_while_the_disk_matches_it(index: IndexStore) -> None:
    fs = FakeFS()
    puller = make_puller(fs, index)
    write_all(fs, "kept.txt", b"k")
    write_all(fs, "edited.txt", b"e")
    noted = [
        (remote_file("kept.txt", b"k"), fs.lstat("kept.txt")),
        (remote_file("edited.txt", b"e"), fs.lstat("edited.txt")),
    ]
    puller.recorder.note_applying(noted)
    write_all(fs, "edited.txt", b"the user's edit since")
    assert puller.adopt_applied() == 1
    assert index.get_local(FOLDER, "kept.txt") is not None
    assert index.get_local(FOLDER, "edited.txt") is None
    assert index.applying(FOLDER) == []


class SyncLog(FakeFS):
    """FakeFS that notes each fsync_dirs call (one call is one phase)."""

    def __init__(self) -> None:
        super().__init__()
        self.phases: list[list[str]] = []

    def fsync_dirs(self, dirnames):  # type: ignore[no-untyped-def]
        self.phases.append(list(dirnames))
        return super().fsync_dirs(self.phases[-1])


def test_directories_that_gained_entries_are_durable_before_those_that_lost_some(
    index: IndexStore,
) -> None:
    """photos/p.jpg renamed to albums/p.jpg, then photos removed: a power cut must not
    find the root (without photos) durable while albums is not (the file under no name)."""
    fs = SyncLog()
    recorder = make_puller(fs, index).recorder
    recorder.mark_gained("", "albums")  # albums created in the root; the file moved in
    recorder.mark_lost("photos", "")  # the file moved out; photos removed from the root
    recorder.flush()
    assert fs.phases == [["albums"], ["", "photos"]]
    recorder.flush()
    assert fs.phases[2:] == [[], []]  # nothing left over


def test_a_deletion_is_made_durable_by_the_flush_before_it_is_recorded(
    index: IndexStore,
) -> None:
    fs = SyncLog()
    puller = make_puller(fs, index)
    fs.makedirs("d")
    write_all(fs, "d/gone.txt", b"g")
    recorder = puller.recorder
    kept = remote_file("d/gone.txt", b"g")
    recorder.record(kept, fs.lstat("d/gone.txt"))
    recorder.flush()
    fs.phases.clear()
    version = vector.update(kept.version, REMOTE_SHORT, 2)
    puller.entries.apply(kept.with_(deleted=True, size=0, blocks=(), version=version))
    assert "gone.txt" not in [e.name for e in fs.scandir("d")]
    assert fs.phases == []  # not yet: the flush does it, before the index write
    stored = index.get_local(FOLDER, "d/gone.txt")
    assert stored is not None and not stored.deleted
    recorder.flush()
    assert fs.phases == [[], ["d"]]
    stored = index.get_local(FOLDER, "d/gone.txt")
    assert stored is not None and stored.deleted
