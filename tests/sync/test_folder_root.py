"""local_index_outdated on a real directory: when a start finds the index no longer
describing the disk (pull from the cluster instead of announcing deletions), and when
the missing files were only renamed by the user (scan: the renames travel)."""

from __future__ import annotations

import os
from pathlib import Path

from p2psync.fs.basic import BasicFS
from p2psync.protocol.fileinfo import FileInfo, FileType
from p2psync.sync.folder_root import local_index_outdated, moved_within


def _indexed(root: Path, names: list[str]) -> list[FileInfo]:
    """Write each name with its own content; the index records as a scan would."""
    out = []
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (100 + i))
        st = path.stat()
        out.append(FileInfo(name=name, size=st.st_size, modified_ns=st.st_mtime_ns))
    out.append(FileInfo(name="photos", type=FileType.DIRECTORY))
    return out


NAMES = [f"photos/p{i:02d}.jpg" for i in range(10)]


def test_files_in_place_describe_the_disk(tmp_path: Path) -> None:
    local = _indexed(tmp_path, NAMES)
    assert local_index_outdated(BasicFS(tmp_path), local, marker_lost=False) == ""


def test_folder_emptied_while_stopped_is_outdated(tmp_path: Path) -> None:
    local = _indexed(tmp_path, NAMES)
    for name in NAMES:
        (tmp_path / name).unlink()
    why = local_index_outdated(BasicFS(tmp_path), local, marker_lost=False)
    assert why == "none of the files in its index are on disk"


def test_folder_replaced_by_other_files_is_outdated(tmp_path: Path) -> None:
    local = _indexed(tmp_path, NAMES)
    for name in NAMES:
        (tmp_path / name).unlink()
    (tmp_path / "other.txt").write_bytes(b"something else")
    assert local_index_outdated(BasicFS(tmp_path), local, marker_lost=False) != ""


def test_top_directory_renamed_while_stopped_is_a_rename(tmp_path: Path) -> None:
    """The user renamed the folder's only directory: every indexed name is gone, but the
    same files are on disk under the new names; a scan must send renames, not the
    cluster's old names back."""
    local = _indexed(tmp_path, NAMES)
    os.rename(tmp_path / "photos", tmp_path / "albums")
    assert local_index_outdated(BasicFS(tmp_path), local, marker_lost=False) == ""


def test_half_the_files_found_elsewhere_is_a_rename(tmp_path: Path) -> None:
    local = _indexed(tmp_path, NAMES)
    (tmp_path / "albums").mkdir()
    for name in NAMES[:5]:
        os.rename(tmp_path / name, tmp_path / "albums" / Path(name).name)
    for name in NAMES[5:]:
        (tmp_path / name).unlink()
    fs = BasicFS(tmp_path)
    files = [f for f in local if f.is_file]
    assert moved_within(fs, files)
    os.unlink(tmp_path / "albums" / Path(NAMES[0]).name)  # 4 of 10: not enough
    assert not moved_within(fs, files)
    assert local_index_outdated(fs, local, marker_lost=False) != ""


def test_a_copy_with_new_mtimes_is_not_a_rename(tmp_path: Path) -> None:
    local = _indexed(tmp_path, NAMES)
    (tmp_path / "albums").mkdir()
    for name in NAMES:
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).unlink()
        target = tmp_path / "albums" / Path(name).name
        target.write_bytes(data)
        os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert local_index_outdated(BasicFS(tmp_path), local, marker_lost=False) != ""


def test_marker_back_with_a_file_missing_is_outdated_even_if_moved(tmp_path: Path) -> None:
    local = _indexed(tmp_path, NAMES)
    os.rename(tmp_path / "photos", tmp_path / "albums")
    why = local_index_outdated(BasicFS(tmp_path), local, marker_lost=True)
    assert "is back but" in why
