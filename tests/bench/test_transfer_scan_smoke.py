"""Keeps the block-transfer and scanner benchmarks from rotting: tiny runs, end to end.

Real subprocesses (the transfer server, the scanner children, sha256sum), real TLS on
loopback, real files and SQLite; the JSON record and the marked sections of a markdown
file rewritten in place, the rest of the file untouched.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from bench.errors import BenchError
from bench.scan_bench import make_empty_files, tree_size
from bench.transfer_bench import (
    BLOCK_HASH,
    BlobHandler,
    Server,
    block_at,
    make_buffer,
    open_peer,
    replace_marked,
)
from p2psync.identity import generate_identity
from p2psync.net.tls import make_tls_context, tls_accept, tls_connect
from p2psync.protocol.messages import ClusterConfig

ROOT = Path(__file__).resolve().parents[2]
KiB = 1024
MiB = 1 << 20

DOC = (
    "# Perf\n\n<!-- bench:begin -->\nOTHER BENCH\n<!-- bench:end -->\n\n"
    "## Block transfer (issue 4)\n\n<!-- transfer:begin -->\nOLD T\n<!-- transfer:end -->\n\n"
    "## Scanner (issue 3)\n\n<!-- scan:begin -->\nOLD S\n<!-- scan:end -->\n"
)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_transfer_bench_tiny_run_end_to_end(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(DOC)
    out = tmp_path / "transfer.json"
    proc = _run(
        ["bench.transfer_bench", "--mib-per-row", "2", "--sizes", "128k,1m", "--in-flight", "4,16",
         "--out", str(out), "--doc", str(doc)],
        timeout=60,
    )  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [(r["mode"], r["request_size"], r["in_flight"]) for r in rows] == [
        ("raw", 128 * KiB, 0),
        ("protocol", 128 * KiB, 4),
        ("protocol", 128 * KiB, 16),
        ("raw", MiB, 0),
        ("protocol", MiB, 4),
        ("protocol", MiB, 16),
    ]
    for r in rows:
        assert r["bytes"] == 2 * MiB
        assert r["seconds"] > 0 and r["mbps"] > 0
        assert r["client_cpu_s"] > 0  # the client did the TLS work itself
        assert r["server_cpu_s"] >= 0
        assert r["pct_of_limit"] > 0
    text = doc.read_text()
    assert "OLD T" not in text and "OLD S" in text and "OTHER BENCH" in text
    assert text.startswith("# Perf\n\n<!-- bench:begin -->\nOTHER BENCH\n<!-- bench:end -->\n\n")
    assert "| 1 MiB | 16 | TLS + protocol + PeerConnection |" in text
    assert "| 128 KiB | — | plain TLSStream copy (limit) |" in text
    assert "| 1 MiB | 16 |" in proc.stdout


def test_scan_bench_tiny_run_end_to_end(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(DOC)
    out = tmp_path / "scan.json"
    work = tmp_path / "work"
    work.mkdir()
    _run(
        ["bench.scan_bench", "--small-files", "150", "--big-files", "3", "--big-mib", "3",
         "--rescan-files", "200", "--rss-files", "300,600", "--workdir", str(work),
         "--out", str(out), "--doc", str(doc)],
        timeout=60,
    )  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    p2p = [r for r in rows if r["kind"] == "p2psync"]
    limits = [r for r in rows if r["kind"] == "limit"]
    assert [r["files"] for r in p2p] == [150, 3, 200, 300, 600]
    assert [r["limit"] for r in limits] == [
        "sha256sum -P2",
        "sha256sum -P2",
        "find -printf (lstat)",
    ]
    assert p2p[1]["bytes"] == 3 * MiB  # every byte of the big files was hashed
    assert p2p[2]["bytes"] == 0 and p2p[2]["initial_seconds"] > 0  # rescan hashed nothing
    for r in p2p:
        assert r["seconds"] > 0
        assert 10 * MiB < r["peak_rss"] < 1000 * MiB
    for r in p2p[:3]:
        assert r["pct_of_limit"] > 0
    assert list(work.iterdir()) == []  # the trees and databases are gone
    text = doc.read_text()
    assert "OLD S" not in text and "OLD T" in text and "OTHER BENCH" in text
    assert "| rescan, 200 unchanged files | limit: `find -printf (lstat)` | 200 |" in text
    assert "| initial scan, 3 MiB in 3 files | p2psync scanner + index | 3 |" in text
    assert text.rstrip().endswith("<!-- scan:end -->")


async def _both(first, second):  # type: ignore[no-untyped-def]
    """Run two awaitables concurrently; their results in order."""
    results: list[object] = [None, None]

    async def one(i: int, fn) -> None:  # type: ignore[no-untyped-def]
        results[i] = await fn()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, 0, first)
        nursery.start_soon(one, 1, second)
    return results


async def test_protocol_peers_serve_blocks_from_memory() -> None:
    """Both sides of the benchmark's stack in one process: TLS, Hellos, ClusterConfigs,
    concurrent Requests answered with the right bytes."""
    buffer = make_buffer()
    server_handler = BlobHandler(buffer)
    client_handler = BlobHandler(buffer)
    got: dict[int, bytes] = {}
    with trio.fail_after(20):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        tcp_client = await trio.open_tcp_stream("127.0.0.1", port)
        tcp_server = await listeners[0].accept()
        await listeners[0].aclose()
        client_tls, server_tls = await _both(
            lambda: tls_connect(tcp_client, make_tls_context(generate_identity())),
            lambda: tls_accept(tcp_server, make_tls_context(generate_identity())),
        )
        client, server = await _both(
            lambda: open_peer(client_tls, "client"), lambda: open_peer(server_tls, "server")
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run, server_handler)
            await nursery.start(client.run, client_handler)
            await server.send(ClusterConfig())
            await client.send(ClusterConfig())
            await client_handler.cluster_config.wait()
            await server_handler.cluster_config.wait()

            async def fetch(offset: int) -> None:
                got[offset] = await client.request(
                    "bench", "blob.bin", offset, 128 * KiB, BLOCK_HASH
                )

            async with trio.open_nursery() as requests:
                for i in range(8):
                    requests.start_soon(fetch, i * 128 * KiB)
            await client.close("done")
            await server.wait_closed()  # the server's reader saw our Close
            nursery.cancel_scope.cancel()
    assert sorted(got) == [i * 128 * KiB for i in range(8)]
    for offset, data in got.items():
        assert data == buffer[offset : offset + 128 * KiB]


def test_block_at_wraps_inside_the_buffer() -> None:
    buffer = bytes(range(256)) * 4  # 1 KiB
    assert block_at(buffer, 0, 256) == buffer[:256]
    assert block_at(buffer, 1024, 256) == buffer[1024 % 769 : 1024 % 769 + 256]
    assert all(len(block_at(buffer, off, 300)) == 300 for off in range(0, 5000, 97))


def test_server_subprocess_stops_when_its_stdin_closes() -> None:
    server = Server("raw")
    assert server.port > 0
    server.stop()
    assert server.proc.returncode == 0


def test_replace_marked_needs_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("no markers here\n")
    with pytest.raises(BenchError):
        replace_marked(doc, "<!-- transfer:begin -->", "<!-- transfer:end -->", "T\n")
    doc.write_text("a\n<!-- transfer:begin -->\nold\n<!-- transfer:end -->\nb\n")
    replace_marked(doc, "<!-- transfer:begin -->", "<!-- transfer:end -->", "new\n")
    assert doc.read_text() == "a\n<!-- transfer:begin -->\nnew\n<!-- transfer:end -->\nb\n"


def test_empty_tree_spreads_files_evenly_and_grows_in_place(tmp_path: Path) -> None:
    make_empty_files(tmp_path / "t", 25, dirs=10)
    assert tree_size(tmp_path / "t") == (25, 0)
    assert sorted(len(list(d.iterdir())) for d in (tmp_path / "t").iterdir()) == [2] * 5 + [3] * 5
    make_empty_files(tmp_path / "t", 250, dirs=10)  # grows the same tree
    assert tree_size(tmp_path / "t") == (250, 0)
    assert [len(list(d.iterdir())) for d in (tmp_path / "t").iterdir()] == [25] * 10
