"""ServeQueue: block requests that arrive together are read in one worker-thread job,
each still checked on its own, and nobody waits forever when the folder stops."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import trio
import trio.testing

from p2psync.fs import BasicFS, write_all
from p2psync.index import IndexStore
from p2psync.protocol import vector
from p2psync.protocol.fileinfo import LocalFileInfo, block_size_for
from p2psync.protocol.messages import ErrorCode, Request
from p2psync.scanner.blocks import hash_bytes
from p2psync.scanner.ignore import Ignore
from p2psync.sync import serve
from p2psync.sync.serve import BlockServer, ServeQueue

LOCAL = bytes(range(32))
FOLDER = "default"


@pytest.fixture
def server(tmp_path: Path, index: IndexStore) -> BlockServer:
    root = tmp_path / "folder"
    root.mkdir()
    fs = BasicFS(root)
    for d in range(4):
        fs.mkdir(f"d{d}")
    for i in range(40):
        data = f"content of file {i}\n".encode() * (i + 1)
        write_all(fs, f"d{i % 4}/f{i}.txt", data)
        st = fs.lstat(f"d{i % 4}/f{i}.txt")
        size = block_size_for(len(data))
        index.update_local(
            FOLDER,
            [
                LocalFileInfo(
                    name=f"d{i % 4}/f{i}.txt",
                    size=len(data),
                    permissions=st.permissions,
                    modified_ns=st.mtime_ns,
                    version=vector.make([(1, 1)]),
                    block_size=size,
                    blocks=hash_bytes(data, size),
                    inode=st.inode,
                )
            ],
        )
    return BlockServer(FOLDER, fs, index, Ignore)


def request(i: int, *, name: str | None = None, bad_hash: bool = False) -> Request:
    data = f"content of file {i}\n".encode() * (i + 1)
    digest = hashlib.sha256(b"other" if bad_hash else data).digest()
    return Request(i, FOLDER, name or f"d{i % 4}/f{i}.txt", 0, len(data), digest)


async def test_many_requests_share_few_thread_jobs(server: BlockServer) -> None:
    jobs: list[int] = []
    read_blocks = server.read_blocks

    def counted(requests):  # type: ignore[no-untyped-def]
        jobs.append(len(requests))
        return read_blocks(requests)

    server.read_blocks = counted  # type: ignore[method-assign]
    queue = ServeQueue(server, trio.CapacityLimiter(4))
    results: dict[int, tuple[ErrorCode, bytes]] = {}

    async def ask(req: Request) -> None:
        results[req.id] = await queue.read(req)

    async with trio.open_nursery() as nursery:
        await nursery.start(queue.serve)
        async with trio.open_nursery() as askers:
            for i in range(40):
                askers.start_soon(ask, request(i))
            askers.start_soon(ask, request(100, name="missing.txt"))
            askers.start_soon(ask, request(101, name="d1/f1.txt", bad_hash=True))
        nursery.cancel_scope.cancel()

    for i in range(40):
        assert results[i] == (ErrorCode.NO_ERROR, f"content of file {i}\n".encode() * (i + 1))
    assert results[100][0] == ErrorCode.NO_SUCH_FILE
    assert results[101][0] == ErrorCode.INVALID_FILE
    assert sum(jobs) == 42 and len(jobs) < 42 // 4


async def test_without_a_running_queue_a_request_is_read_directly(server: BlockServer) -> None:
    queue = ServeQueue(server, trio.CapacityLimiter(1))
    assert await queue.read(request(3)) == (ErrorCode.NO_ERROR, b"content of file 3\n" * 4)


async def test_requests_left_when_the_folder_stops_get_an_error_not_a_hang(
    server: BlockServer,
) -> None:
    release = threading.Event()
    entered = threading.Event()
    read_blocks = server.read_blocks

    def slow(requests):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return read_blocks(requests)

    server.read_blocks = slow  # type: ignore[method-assign]
    queue = ServeQueue(server, trio.CapacityLimiter(1), workers=1)
    results: dict[int, ErrorCode] = {}

    async def ask(req: Request) -> None:
        results[req.id] = (await queue.read(req))[0]

    with trio.fail_after(10):
        async with trio.open_nursery() as askers:
            async with trio.open_nursery() as folder:
                await folder.start(queue.serve)
                askers.start_soon(ask, request(1))
                await trio.to_thread.run_sync(entered.wait)  # the worker is busy with #1
                askers.start_soon(ask, request(2))  # queued behind it
                await trio.testing.wait_all_tasks_blocked()
                folder.cancel_scope.cancel()
                release.set()
    assert results == {1: ErrorCode.NO_ERROR, 2: ErrorCode.GENERIC}


def test_a_file_changed_since_its_scan_is_hashed_before_serving(
    server: BlockServer, tmp_path: Path
) -> None:
    path = tmp_path / "folder" / "d2" / "f2.txt"
    original = path.read_bytes()
    path.write_bytes(b"X" * len(original))  # same size, new content and mtime
    assert server.read_block(request(2)) == (ErrorCode.INVALID_FILE, b"")
    path.write_bytes(original + b"appended")  # the indexed block is still intact
    assert server.read_block(request(2)) == (ErrorCode.NO_ERROR, original)


def test_a_file_unchanged_since_its_scan_is_served_without_hashing(
    server: BlockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[int] = []
    real = hashlib.sha256

    def counting_sha256(data: bytes = b"") -> hashlib._Hash:
        hashed.append(len(data))
        return real(data)

    asked = request(5)
    monkeypatch.setattr(serve.hashlib, "sha256", counting_sha256)
    assert server.read_block(asked) == (ErrorCode.NO_ERROR, b"content of file 5\n" * 6)
    assert not any(hashed)  # (hashing objects made empty elsewhere do not count)


def test_a_short_read_is_refused(server: BlockServer, tmp_path: Path) -> None:
    path = tmp_path / "folder" / "d3" / "f3.txt"
    with open(path, "r+b") as f:
        f.truncate(5)
    assert server.read_block(request(3))[0] == ErrorCode.INVALID_FILE


def test_a_batch_read_answers_as_each_request_alone(
    server: BlockServer, index: IndexStore, tmp_path: Path
) -> None:
    """The batch's local entries are looked up together; every answer is still the one the
    request gets on its own: found, unknown name, wrong hash, changed on disk, repeated."""
    (tmp_path / "folder" / "d1" / "f5.txt").write_bytes(b"edited since the scan")
    asked = [
        *(request(i) for i in range(40)),
        request(7, name="d3/missing.txt"),
        request(9, bad_hash=True),
        request(12),  # the same file twice in one batch
    ]
    fresh = BlockServer(FOLDER, server.fs, index, Ignore)
    alone = [fresh.read_block(r) for r in asked]
    fresh.clear_cache()
    assert fresh.read_blocks(asked) == alone
    assert alone[5][0] == ErrorCode.INVALID_FILE and alone[40][0] == ErrorCode.NO_SUCH_FILE
    assert alone[41][0] == ErrorCode.INVALID_FILE and alone[0][0] == ErrorCode.NO_ERROR
    assert sum(code == ErrorCode.NO_ERROR for code, _ in alone) == 40


async def test_an_unreadable_index_fails_those_requests_not_the_folder(
    server: BlockServer, index: IndexStore
) -> None:
    """A read that cannot reach the index (a reader connection that cannot be opened when
    the process is out of file handles; here: the store closed under the queue) answers
    GENERIC and leaves the queue, and the folder nursery it runs in, alive."""
    queue = ServeQueue(server, trio.CapacityLimiter(4))
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.serve)
        index.close()
        with trio.fail_after(10):
            results = await queue.read_many([request(1), request(2)])
            assert [code for code, _ in results] == [ErrorCode.GENERIC] * 2
            again = await queue.read_many([request(3)])
        assert [code for code, _ in again] == [ErrorCode.GENERIC]
        nursery.cancel_scope.cancel()


async def test_a_full_queue_makes_requesters_wait_and_then_serves_them_all(
    server: BlockServer,
) -> None:
    """The queue is bounded: past ``queued`` waiting slots a requester waits to queue (the
    peer's connection is held back) and is served once there is room."""
    release = threading.Event()
    entered = threading.Event()
    read_blocks = server.read_blocks

    def slow(requests):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return read_blocks(requests)

    server.read_blocks = slow  # type: ignore[method-assign]
    queue = ServeQueue(server, trio.CapacityLimiter(1), workers=1, queued=1)
    results: dict[int, ErrorCode] = {}

    async def ask(req: Request) -> None:
        results[req.id] = (await queue.read(req))[0]

    with trio.fail_after(10):
        async with trio.open_nursery() as folder:
            await folder.start(queue.serve)
            async with trio.open_nursery() as askers:
                askers.start_soon(ask, request(1))
                await trio.to_thread.run_sync(entered.wait)  # the worker is busy with #1
                for i in (2, 3, 4):
                    askers.start_soon(ask, request(i))
                await trio.testing.wait_all_tasks_blocked()
                assert queue._send is not None
                assert queue._send.statistics().current_buffer_used == 1  # #2; 3, 4 wait
                release.set()
            folder.cancel_scope.cancel()
    assert results == dict.fromkeys((1, 2, 3, 4), ErrorCode.NO_ERROR)


async def test_requesters_waiting_to_queue_when_the_folder_stops_get_an_error(
    server: BlockServer,
) -> None:
    release = threading.Event()
    entered = threading.Event()
    read_blocks = server.read_blocks

    def slow(requests):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return read_blocks(requests)

    server.read_blocks = slow  # type: ignore[method-assign]
    queue = ServeQueue(server, trio.CapacityLimiter(1), workers=1, queued=1)
    results: dict[int, ErrorCode] = {}

    async def ask(req: Request) -> None:
        results[req.id] = (await queue.read(req))[0]

    with trio.fail_after(10):
        async with trio.open_nursery() as askers:
            async with trio.open_nursery() as folder:
                await folder.start(queue.serve)
                askers.start_soon(ask, request(1))
                await trio.to_thread.run_sync(entered.wait)
                for i in (2, 3, 4):  # one queued, two waiting to queue
                    askers.start_soon(ask, request(i))
                await trio.testing.wait_all_tasks_blocked()
                folder.cancel_scope.cancel()
                release.set()
    assert results == {1: ErrorCode.NO_ERROR} | dict.fromkeys((2, 3, 4), ErrorCode.GENERIC)
