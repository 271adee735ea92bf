"""The machine's physical limits for the same work the daemons do, measured in the run.

* SHA-256 (hashlib, 128 KiB blocks) on one thread and on two threads (GIL released);
* TLS 1.3 over loopback TCP with p2psync's own stack (pyOpenSSL TLSStream on trio), both
  ends in one process, 1 MiB writes;
* sequential disk write of one file in 1 MiB writes, then fsync, in the bench work dir.

All in MB/s (10^6 bytes per second).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

MiB = 1 << 20
_BLOCK = 128 * 1024


def sha256_mbps(threads: int, total_per_thread: int) -> float:
    data = memoryview(os.urandom(16 * MiB))
    blocks = len(data) // _BLOCK

    def work() -> None:
        done = 0
        i = 0
        while done < total_per_thread:
            off = (i % blocks) * _BLOCK
            hashlib.sha256(data[off : off + _BLOCK]).digest()
            done += _BLOCK
            i += 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * total_per_thread / (time.perf_counter() - t0) / 1e6


def disk_write_mbps(directory: Path, total: int) -> float:
    path = directory / "limits-disk.bin"
    chunk = os.urandom(MiB)
    try:
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(total // MiB):
                os.write(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        return total / (time.perf_counter() - t0) / 1e6
    finally:
        path.unlink(missing_ok=True)


def tls_mbps(total: int) -> float:
    import trio

    from p2psync.identity import generate_identity
    from p2psync.net.tls import TLSStream, make_tls_context

    async def main() -> float:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        client_tcp = await trio.open_tcp_stream("127.0.0.1", port)
        server_tcp = await listeners[0].accept()
        for listener in listeners:
            await listener.aclose()
        client = TLSStream(client_tcp, make_tls_context(generate_identity()), server_side=False)
        server = TLSStream(server_tcp, make_tls_context(generate_identity()), server_side=True)
        with trio.fail_after(30):
            async with trio.open_nursery() as n:
                n.start_soon(client.do_handshake)
                n.start_soon(server.do_handshake)
        payload = os.urandom(MiB)
        received = 0

        async def send() -> None:
            for _ in range(total // MiB):
                await client.send_all(payload)

        async def receive() -> None:
            nonlocal received
            while received < total:
                data = await server.receive_some(4 * MiB)
                if not data:
                    break
                received += len(data)

        t0 = time.perf_counter()
        with trio.fail_after(300):
            async with trio.open_nursery() as n:
                n.start_soon(send)
                n.start_soon(receive)
        elapsed = time.perf_counter() - t0
        await client.aclose()
        await server.aclose()
        return received / elapsed / 1e6

    return trio.run(main)


def measure(workdir: Path, quick: bool) -> dict[str, float]:
    """All limits; ``tightest`` is min(SHA-256 one core, TLS, disk) — the bound a
    one-way transfer cannot beat (each byte is hashed, encrypted and written once)."""
    size = (256 if quick else 1024) * MiB
    out = {
        "sha256_1core_mbps": sha256_mbps(1, size),
        "sha256_2cores_mbps": sha256_mbps(2, size),
        "tls_loopback_mbps": tls_mbps(size // 2),
        "disk_write_fsync_mbps": disk_write_mbps(workdir, size),
    }
    out["tightest_mbps"] = min(
        out["sha256_1core_mbps"], out["tls_loopback_mbps"], out["disk_write_fsync_mbps"]
    )
    return {k: round(v, 1) for k, v in out.items()}
