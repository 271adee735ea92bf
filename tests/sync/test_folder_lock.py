"""One daemon per folder path: the marker lock (issue 18.1)."""

from pathlib import Path

from p2psync.sync.folder_lock import FolderLock


def test_one_holder_and_a_replaced_marker_is_locked_again(tmp_path: Path) -> None:
    (tmp_path / ".p2psync").mkdir()
    first, second = FolderLock(tmp_path), FolderLock(tmp_path)
    assert first.ensure() == ""
    assert "in use by another p2psync daemon" in second.ensure()
    # the marker is deleted and recreated while the first holder runs: it locks the new one
    (tmp_path / ".p2psync").rmdir()
    (tmp_path / ".p2psync").mkdir()
    assert first.ensure() == ""
    assert "in use" in second.ensure()
    first.release()
    assert second.ensure() == ""
    second.release()


def test_a_marker_file_is_locked_too_and_no_marker_is_no_lock(tmp_path: Path) -> None:
    lock = FolderLock(tmp_path)
    assert lock.ensure() == ""  # nothing to lock yet
    (tmp_path / ".p2psync").write_bytes(b"")
    assert lock.ensure() == ""
    assert "in use" in FolderLock(tmp_path).ensure()
    lock.release()
