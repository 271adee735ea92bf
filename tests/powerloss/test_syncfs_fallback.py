"""On a filesystem whose ``syncfs`` makes nothing durable (FUSE: the kernel answers it
without asking the filesystem), batches fall back to one fsync per file and directory.

Cut point: a batch of new files made durable with ``fsync_files`` + ``fsync_dirs`` and
the power cut right after; before the fallback both calls went through ``syncfs`` and
the cut lost every file of the batch.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness import crashfs, needs_fuse

from p2psync.fs import durable
from p2psync.fs.basic import BasicFS

pytestmark = needs_fuse


def test_fuse_syncfs_is_not_trusted(tmp_path: Path) -> None:
    with crashfs(tmp_path) as m:
        fd = os.open(m.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert not durable.syncfs_trusted(fd)
            assert not durable.sync_filesystems([fd, fd])
        finally:
            os.close(fd)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert durable.syncfs_trusted(fd)  # tmp is a local disk filesystem (or tmpfs)
    finally:
        os.close(fd)


def test_batch_survives_a_cut_on_fuse(tmp_path: Path, monkeypatch) -> None:
    # whatever else the machine is writing, the batch is one that would use syncfs
    monkeypatch.setattr(durable, "PENDING_MAX", 1 << 62)
    with crashfs(tmp_path) as m:
        fs = BasicFS(m.mountpoint)
        fs.mkdir("d")
        fs.fsync_dir("")
        handles = []
        for i in range(8):
            h = fs.open_write(f"d/f{i}", exclusive=True)
            h.write_at(0, f"content {i}".encode())
            handles.append(h)
        assert fs.fsync_files(handles) == [None] * 8
        for h in handles:
            h.close()
        assert fs.fsync_dirs(["d", ""]) == []
        m.cut()
        assert m.wait_cut(30)
        out = m.output
    assert sorted(os.listdir(out / "d")) == [f"f{i}" for i in range(8)]
    for i in range(8):
        assert (out / "d" / f"f{i}").read_bytes() == f"content {i}".encode()
