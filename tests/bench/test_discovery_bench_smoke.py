"""Keeps the discovery-server benchmark from rotting: a tiny run, end to end, for real.

A real discovery server subprocess per store (memory, and Redis with a private
redis-server), real signed announcements, the JSON record and the marked section of a
markdown file rewritten in place.
"""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio
import trio.testing

from bench.discovery_bench import load_identities, main, memory_cell
from bench.discovery_http import RawConnection

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_on_both_stores_end_to_end(tmp_path: Path) -> None:
    doc = tmp_path / "discovery-server.md"
    doc.write_text(
        "# Disco\n\n## Performance\n\nintro\n\n<!-- discovery-bench:begin -->\nOLD TABLE\n"
        "<!-- discovery-bench:end -->\n\noutro\n"
    )
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.discovery_bench",
            "--preset",
            "tiny",
            "--devices",
            "30",
            "--lookups",
            "60",
            "--workers",
            "1",
            "--cache",
            str(tmp_path / "ids.msgpack"),
            "--out",
            str(out),
            "--doc",
            str(doc),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    record = json.loads(out.read_text())
    rows = {row["store"]: row for row in record["rows"]}
    assert set(rows) == {"memory", "redis"}
    for row in rows.values():
        # Every request got the answer it should (the run fails otherwise, but say it here).
        assert row["announce"]["statuses"] == {"204": 30}
        assert row["lookup_hit"]["statuses"] == {"200": 60}
        assert row["lookup_miss"]["statuses"] == {"404": 60}
        for phase in ("announce", "lookup_hit", "lookup_miss"):
            figures = row[phase]
            assert figures["per_second"] > 0
            assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
        assert row["server_rss_loaded"] > 10 * 2**20
    assert rows["redis"]["redis_used_loaded"] > rows["redis"]["redis_used_idle"]

    text = doc.read_text()
    assert "OLD TABLE" not in text
    assert text.startswith("# Disco\n\n## Performance\n\nintro\n\n<!-- discovery-bench:begin -->")
    assert text.endswith("<!-- discovery-bench:end -->\n\noutro\n")
    assert "| memory |" in text and "| redis |" in text
    assert "(extrapolated)" in text  # 30 devices: the 100,000 figure is an estimate
    assert "| memory |" in proc.stdout  # the table is printed too

    # The saved record renders the same table again without running anything.
    again = tmp_path / "again.md"
    again.write_text("<!-- discovery-bench:begin -->\n<!-- discovery-bench:end -->\n")
    assert main(["--from-json", str(out), "--doc", str(again)]) == 0
    table = again.read_text().removeprefix("<!-- discovery-bench:begin -->\n")
    assert table.removesuffix("<!-- discovery-bench:end -->\n") in text


def test_httpx_client_on_the_memory_store(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench.discovery_bench", "--preset", "tiny", "--stores",
            "memory", "--client", "httpx", "--devices", "10", "--lookups", "20", "--workers",
            "1", "--no-cache", "--out", str(out), "--no-doc",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["store"] == "memory"
    assert row["announce"]["statuses"] == {"204": 10}
    assert row["lookup_hit"]["statuses"] == {"200": 20}
    assert "httpx.AsyncClient" in proc.stdout


def test_identity_cache_grows_and_is_reused(tmp_path: Path) -> None:
    cache = tmp_path / "ids.msgpack"
    first, _ = load_identities(3, cache, workers=1)
    again, _ = load_identities(2, cache, workers=1)
    more, _ = load_identities(5, cache, workers=1)
    assert again == first[:2]
    assert more[:3] == first
    assert len({raw for _, _, raw in more}) == 5


def test_memory_cell_extrapolates_only_below_target() -> None:
    assert "extrapolated" in memory_cell(50 * 2**20, 60 * 2**20, 10_000)
    cell = memory_cell(50 * 2**20, 150 * 2**20, 100_000)
    assert "extrapolated" not in cell
    assert "50 MiB → 150 MiB (1,049 B/device)" == cell


async def test_raw_client_reads_keep_alive_responses_split_across_reads() -> None:
    """Headers and bodies arriving in pieces, three responses on one connection."""
    responses = [
        b'HTTP/1.1 404 Not Found\r\ncontent-length: 15\r\n\r\n{"error": "no"}',
        b"HTTP/1.1 204 No Content\r\nReannounce-After: 1800\r\n\r\n",
        b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\ncontent-type: application/json\r\n\r\n{"seen": "x"}',
    ]
    received: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        for response in responses:
            received.append(await stream.receive_some(65536))
            for i in range(0, len(response), 7):  # dribble it out
                await stream.send_all(response[i : i + 7])
                await trio.testing.wait_all_tasks_blocked()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            connection = await RawConnection.open("127.0.0.1", port)
            assert await connection.request("GET", "/v1/lookup?device=Y", None) == 404
            assert await connection.request("POST", "/v1/announce", b"{}") == 204
            assert await connection.request("GET", "/v1/lookup?device=X", None) == 200
            await connection.aclose()
            nursery.cancel_scope.cancel()
    assert received[1].startswith(b"POST /v1/announce HTTP/1.1\r\n")
    assert received[1].endswith(b"Content-Length: 2\r\n\r\n{}")
    assert received[2].startswith(b"GET /v1/lookup?device=X HTTP/1.1\r\n")
