"""The history log on a real SQLite file: rows, queries, retention, the service."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from p2psync.history.changes import Change, Kind, Origin
from p2psync.history.log import HistoryError, HistoryLog, Retention
from p2psync.history.service import HistoryService
from p2psync.protocol.fileinfo import LocalFileInfo
from p2psync.protocol.vector import make

DAY = 86_400 * 1_000_000_000
BIG = 0xF000_0000_0000_0001  # a short ID with the top bit set


def _change(name: str, at: int, kind: Kind = Kind.MODIFIED, device: int = 7, folder: str = "f"):
    return Change(folder, name, kind, Origin.LOCAL, device, at, size=len(name), content_hash=b"h")


def test_rows_come_back_newest_first_and_filtered(tmp_path: Path) -> None:
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:
        log.record([_change("a", 1), _change("dir/b", 2, device=BIG), _change("dir0", 3)])
        log.record([_change("a", 4, Kind.DELETED), _change("x", 5, folder="other")])
        assert [c.at_ns for c in log.query("f")] == [4, 3, 2, 1]
        assert [c.kind for c in log.query("f", name="a")] == [Kind.DELETED, Kind.MODIFIED]
        assert [c.name for c in log.query("f", name="dir")] == ["dir/b"]  # not "dir0"
        assert [c.name for c in log.query("f", since_ns=3)] == ["a", "dir0"]
        assert [c.device_short for c in log.query("f", devices=[BIG])] == [BIG]
        assert log.query("f", devices=[]) == []
        assert log.query("f", limit=1)[0] == _change("a", 4, Kind.DELETED)
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:  # it survives a reopen
        assert log.count("f") == 4 and log.count("other") == 1


def test_search_spans_folders_kinds_names_and_pages(tmp_path: Path) -> None:
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:
        log.record([_change("Report.pdf", 1, Kind.CREATED), _change("a_b", 2, folder="g")])
        log.record([_change("axb", 3), _change("100%", 4, Kind.DELETED, folder="g")])
        found = log.search(["f", "g"])
        assert [c.at_ns for _, c in found] == [4, 3, 2, 1]
        ids = [i for i, _ in found]
        assert ids == sorted(ids, reverse=True)
        assert [c.name for _, c in log.search(["f"], contains="report")] == ["Report.pdf"]
        assert [c.name for _, c in log.search(["f", "g"], contains="a_b")] == ["a_b"]  # "_" literal
        assert [c.name for _, c in log.search(["g"], contains="0%")] == ["100%"]
        assert [c.kind for _, c in log.search(["f", "g"], kinds=[Kind.DELETED])] == [Kind.DELETED]
        assert log.search(["f", "g"], kinds=[]) == [] and log.search([]) == []
        page = log.search(["f", "g"], limit=2)
        rest = log.search(["f", "g"], before_id=page[-1][0], limit=2)
        assert [c.at_ns for _, c in page + rest] == [4, 3, 2, 1]


def test_retention_by_age_and_by_count(tmp_path: Path) -> None:
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:
        now = 100 * DAY
        log.record([_change(f"n{i}", now - (10 - i) * DAY) for i in range(10)])
        log.record([_change("o", now - 50 * DAY, folder="other")])
        assert log.prune("f", Retention(max_age_days=5, max_entries=0), now) == 5  # > 5 days
        assert log.prune("f", Retention(max_age_days=0, max_entries=3), now) == 2
        assert [c.name for c in log.query("f")] == ["n9", "n8", "n7"]
        assert log.count("other") == 1  # another folder's rows are its own business
        assert log.prune("f", Retention(max_age_days=0, max_entries=0), now) == 0


def test_a_newer_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    HistoryLog.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with pytest.raises(HistoryError, match="newer"):
        HistoryLog.open(path)


async def test_the_service_writes_batches_and_drops_rather_than_block(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    service = HistoryService(lambda: HistoryLog.open(path), lambda: {"f": Retention()},
                             clock=lambda: 42)  # fmt: skip
    v1 = LocalFileInfo("a.txt", size=1, version=make([(7, 1)]), modified_by=7)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        service.note("f", [(None, v1), (v1, v1.with_(version=make([(7, 2)])))], Origin.PULLED)
        await service.drained()
        nursery.cancel_scope.cancel()
    assert service.log is not None and service.log.closed  # the service closes its log
    with HistoryLog.open(path) as log:
        assert [(c.kind, c.at_ns, c.origin) for c in log.query("f")] == [
            (Kind.MODIFIED, 42, Origin.PULLED),
            (Kind.CREATED, 42, Origin.PULLED),
        ]
    # a full queue (no writer running) drops and counts; nothing blocks
    for _ in range(300):
        service.note_changes([_change("z", 1)])
    assert service.stats.dropped == 300 - 256 and "behind" in service.stats.last_error


async def test_an_unwritable_log_drops_rows_and_keeps_running(tmp_path: Path) -> None:
    log = HistoryLog.open(tmp_path / "h.sqlite3")
    log.close()  # every write now fails like a broken file would
    service = HistoryService(lambda: log, lambda: {})
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        service.note_changes([_change("a", 1), _change("b", 2)])
        await service.drained()
        assert service.stats.dropped == 2
        service.note_changes([_change("c", 3)])
        await service.drained()
        assert service.stats.dropped == 3
        nursery.cancel_scope.cancel()
    assert service.stats.written == 0 and "history" in service.stats.last_error


def test_a_deletion_recorded_after_its_creation_is_paired_as_a_rename(tmp_path: Path) -> None:
    """A scan stores its deletions after everything else: the two halves of a rename
    arrive in two writes, seconds apart at most."""
    new = Change("f", "docs/b.pdf", Kind.CREATED, Origin.LOCAL, 7, 10 * 10**9, size=5,
                 content_hash=b"H")  # fmt: skip
    unrelated = Change("f", "x", Kind.CREATED, Origin.LOCAL, 7, 10 * 10**9, size=5,
                       content_hash=b"other")  # fmt: skip
    gone = Change("f", "a.pdf", Kind.DELETED, Origin.LOCAL, 7, 11 * 10**9, size=5,
                  content_hash=b"H")  # fmt: skip
    late = Change("f", "c.pdf", Kind.DELETED, Origin.LOCAL, 7, 100 * 10**9, size=5,
                  content_hash=b"other")  # fmt: skip
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:
        log.record([new, unrelated])
        log.record([gone])
        log.record([late])  # 90 s after "x" was created: not a rename of it
        got = {(c.name, c.kind, c.detail) for c in log.query("f")}
    assert got == {
        ("docs/b.pdf", Kind.RENAMED_TO, "a.pdf"),
        ("a.pdf", Kind.RENAMED_FROM, "docs/b.pdf"),
        ("x", Kind.CREATED, ""),
        ("c.pdf", Kind.DELETED, ""),
    }


def test_a_file_created_and_deleted_again_is_no_rename(tmp_path: Path) -> None:
    made = Change("f", "tmp.txt", Kind.CREATED, Origin.LOCAL, 7, 1, size=5, content_hash=b"H")
    gone = Change("f", "tmp.txt", Kind.DELETED, Origin.LOCAL, 7, 2, size=5, content_hash=b"H")
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:
        log.record([made])
        log.record([gone])
        assert [c.kind for c in log.query("f")] == [Kind.DELETED, Kind.CREATED]


async def test_a_log_that_cannot_open_turns_history_off_not_the_daemon(tmp_path: Path) -> None:
    (tmp_path / "h.sqlite3").write_bytes(b"not a database, " * 100)
    service = HistoryService(lambda: HistoryLog.open(tmp_path / "h.sqlite3"), lambda: {})
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        assert service.log is None and "history" in service.off_reason
        service.note_changes([_change("a", 1)])
        await service.drained()
        nursery.cancel_scope.cancel()
    assert service.stats.dropped == 1


def test_rename_pairing_finds_its_half_by_content_among_many_rows(tmp_path: Path) -> None:
    """A deletion recorded apart from its creation pairs by content (through the content
    index; rows scanned one by one made a 10,000-file pull cost seconds): among 2,000
    other recent creations only the one with the same content pairs."""
    with HistoryLog.open(tmp_path / "h.sqlite3") as log:
        others = [
            Change("f", f"new/{i}", Kind.CREATED, Origin.PULLED, 7, 10 + i, size=5,
                   content_hash=i.to_bytes(32, "big"))
            for i in range(2000)
        ]  # fmt: skip
        moved = Change("f", "to.txt", Kind.CREATED, Origin.LOCAL, 7, 5000, size=5,
                       content_hash=b"m" * 32)  # fmt: skip
        log.record([*others, moved])
        gone = Change("f", "from.txt", Kind.DELETED, Origin.LOCAL, 7, 5001, size=5,
                      content_hash=b"m" * 32)  # fmt: skip
        log.record([gone])
        kinds = {c.name: (c.kind, c.detail) for c in log.query("f", limit=3)}
        assert kinds["to.txt"] == (Kind.RENAMED_TO, "from.txt")
        assert kinds["from.txt"] == (Kind.RENAMED_FROM, "to.txt")
