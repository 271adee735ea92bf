"""The versioner as the puller uses it: a real folder, a real index, remote deletions."""

from __future__ import annotations

import trio

from p2psync.fs import BasicFS, read_all, write_all
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import FileInfo, FileType, LocalFileInfo, block_size_for
from p2psync.scanner.blocks import hash_bytes
from p2psync.sync.pull import Puller
from p2psync.sync.versioner import TrashcanVersioning, Versioner, list_versions

LOCAL = bytes(range(32))
LOCAL_SHORT = int.from_bytes(LOCAL[:8], "big")
REMOTE_SHORT = 0x1234_5678_9ABC_DEF0
FOLDER = "default"


async def no_sources(name: str) -> list:
    return []


def make_puller(fs: BasicFS, index: IndexStore, versioner: Versioner) -> Puller:
    return Puller(
        folder=FOLDER,
        fs=fs,
        index=index,
        versioner=versioner,
        limiter=trio.CapacityLimiter(2),
        sources_for=no_sources,
    )


def record_local(fs: BasicFS, index: IndexStore, name: str, data: bytes | None = None) -> FileInfo:
    """Put ``name`` on disk (a file, or a symlink to ``/`` if data is None) and in the
    index as the scanner would."""
    if data is None:
        fs.symlink("/", name)
    else:
        write_all(fs, name, data)
    st = fs.lstat(name)
    assert st.type is not None
    block_size = block_size_for(len(data or b""))
    fi = LocalFileInfo(
        name=name,
        type=st.type,
        size=st.size,
        permissions=st.permissions,
        modified_ns=st.mtime_ns,
        modified_by=LOCAL_SHORT,
        version=vector.make([(LOCAL_SHORT, 1)]),
        block_size=block_size if data is not None else 0,
        blocks=hash_bytes(data, block_size) if data is not None else (),
        symlink_target=st.symlink_target,
        inode=st.inode,
    )
    index.update_local(FOLDER, [fi])
    return fi


def root_names(fs: BasicFS) -> list[str]:
    return sorted(e.name for e in fs.scandir(""))


def remote_delete(fi: FileInfo) -> FileInfo:
    return fi.with_(
        deleted=True,
        size=0,
        blocks=(),
        block_size=0,
        modified_by=REMOTE_SHORT,
        version=vector.update(fi.version, REMOTE_SHORT, 2),
    )


async def test_a_remote_delete_lands_in_the_trashcan(fs: BasicFS, index: IndexStore) -> None:
    puller = make_puller(fs, index, TrashcanVersioning(fs))
    fi = record_local(fs, index, "report.txt", b"the only copy")
    with trio.fail_after(10):
        await puller.pull_item(remote_delete(fi))
    assert root_names(fs) == [".p2pversions"]
    [version] = list_versions(fs, "report.txt")
    assert read_all(fs, version.archive_name) == b"the only copy"
    local = index.get_local(FOLDER, "report.txt")
    assert local is not None and local.deleted


async def test_a_remote_delete_of_a_symlink_is_not_versioned(
    fs: BasicFS, index: IndexStore
) -> None:
    puller = make_puller(fs, index, TrashcanVersioning(fs))
    fi = record_local(fs, index, "link", None)
    assert fi.type == FileType.SYMLINK
    with trio.fail_after(10):
        await puller.pull_item(remote_delete(fi))
    assert root_names(fs) == []  # removed, and nothing archived
    assert list_versions(fs) == []
