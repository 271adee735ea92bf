"""Keeps the side-by-side discovery benchmark from rotting: a small run, for real.

Real servers (our discovery_server on memory and on one Redis shared by two instances,
Debian's stdiscosrv when installed), real v3 announcements of 300 distinct devices; the
bench itself fails on any unexpected status, and the two-instance row must have found
every device on the instance it was not announced to. Correctness only, no timing.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVICES, LOOKUPS = 300, 300


def run_bench(tmp_path: Path, targets: str, clients: int = 1) -> tuple[dict[str, dict], str]:
    doc = tmp_path / "discovery-server.md"
    doc.write_text(
        "# Disco\n\n<!-- discovery-v3-bench:begin -->\nOLD\n<!-- discovery-v3-bench:end -->\n"
    )
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.discovery_v3_bench", "--preset", "tiny",
         "--devices", str(DEVICES), "--lookups", str(LOOKUPS), "--workers", "1",
         "--targets", targets, "--clients", str(clients), "--cache", str(tmp_path / "ids.msgpack"),
         "--out", str(out), "--doc", str(doc)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {row["target"]: row for row in json.loads(out.read_text())["rows"]}
    text = doc.read_text()
    assert "OLD" not in text and text.endswith("<!-- discovery-v3-bench:end -->\n")
    return rows, text


def check_row(row: dict) -> None:
    assert row["devices"] == DEVICES
    assert row["announce"]["statuses"] == {"204": DEVICES}
    assert row["lookup_hit"]["statuses"] == {"200": LOOKUPS}
    assert row["lookup_miss"]["statuses"] == {"404": LOOKUPS}
    for phase in ("announce", "lookup_hit", "lookup_miss"):
        assert 0 < row[phase]["p50_ms"] <= row[phase]["p99_ms"] <= row[phase]["max_ms"]
    assert row["server_rss_loaded"] > 0


def test_two_instances_on_one_redis_find_each_others_devices(tmp_path: Path) -> None:
    rows, text = run_bench(tmp_path, "memory,redis x2", clients=2)
    check_row(rows["memory"])
    shared = rows["redis x2"]
    check_row(shared)
    assert shared["instances"] == 2
    assert shared["clients"] == 2  # two load-generator processes, their answers all counted
    # every hit was looked up on the instance the device did not announce to
    assert shared["cross_instance_hits"] == LOOKUPS
    assert "| 2 × discovery_server, one Redis | 300 |" in text


def test_two_workers_hold_every_device(tmp_path: Path) -> None:
    rows, text = run_bench(tmp_path, "memory 2w", clients=2)
    row = rows["memory 2w"]
    check_row(row)  # every hit found, whichever worker the connection reached
    assert row["workers"] == 2
    assert 0 < row["replication_ms"]["p50_ms"] <= row["replication_ms"]["max_ms"]
    assert "| discovery_server --workers 2, memory | 300 |" in text


@pytest.mark.skipif(shutil.which("stdiscosrv") is None, reason="syncthing-discosrv not installed")
def test_same_load_against_stdiscosrv(tmp_path: Path) -> None:
    rows, text = run_bench(tmp_path, "stdiscosrv")
    check_row(rows["stdiscosrv"])
    assert rows["stdiscosrv"]["db_bytes"] > 0
    assert "| stdiscosrv (LevelDB) | 300 |" in text


def test_the_load_generator_survives_a_server_closing_idle_connections(tmp_path: Path) -> None:
    """The server closes a kept-alive connection idle for --header-timeout seconds; the
    bench's client must send its next request on a new one instead of failing the run."""
    import trio

    from bench.discovery_http import RawConnection
    from bench.discovery_procs import _stop, start_server

    proc, url = start_server("memory", tmp_path, ("--header-timeout", "0.5"))
    try:
        host, _, port = url.removeprefix("http://").rpartition(":")

        async def scenario() -> list[int]:
            connection = await RawConnection.open(host, int(port))
            statuses = [await connection.request("GET", "/healthz", None)]
            stream = connection._stream
            assert stream is not None
            with trio.fail_after(20):  # the server sends nothing unasked: readable = closed
                await trio.lowlevel.wait_readable(stream.socket)
            statuses.append(await connection.request("GET", "/healthz", None))
            await connection.aclose()
            return statuses

        assert trio.run(scenario) == [200, 200]
    finally:
        _stop(proc)


def test_a_load_generator_that_fails_to_start_is_a_bench_error() -> None:
    """A generator process that cannot connect reports it; the bench fails with a
    BenchError naming the cause, and no generator process is left behind."""
    import socket

    from bench.discovery_v3_load import LoadGenerators
    from bench.errors import BenchError

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        generators = LoadGenerators([f"http://127.0.0.1:{port}"], 2, 1)
        with pytest.raises(BenchError, match="load generator"):
            generators.__enter__()
    assert all(not proc.is_alive() for proc in generators._procs)
