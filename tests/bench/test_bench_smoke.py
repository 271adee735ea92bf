"""Keeps the benchmark harness from rotting: the smallest workload, end to end, for real.

Two p2psync daemons on loopback through the counting proxy, 50 small files, the JSON
record and the marked section of a markdown file rewritten in place.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smallest_workload_runs_end_to_end(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(
        "# Perf\n\nintro\n\n<!-- bench:begin -->\nOLD TABLE\n<!-- bench:end -->\n\noutro\n"
    )
    out = tmp_path / "result.json"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--preset",
            "tiny",
            "--workloads",
            "a",
            "--repeat",
            "1",
            "--no-syncthing",
            "--no-limits",
            "--strict",
            "--out",
            str(out),
            "--doc",
            str(doc),
            "--workdir",
            str(work),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    record = json.loads(out.read_text())
    (run,) = record["runs"]
    assert run["ok"], run["error"]
    assert run["workload"] == "a" and run["system"] == "p2psync"
    assert 0 < run["seconds"] < 60
    # Every byte of the 50 files crossed the proxy (plus TLS and protocol overhead).
    assert run["data_bytes"] > 50 * 1024
    assert run["wire_bytes"] > run["data_bytes"]
    assert len(run["peak_rss"]) == 2 and all(rss > 10 * 2**20 for rss in run["peak_rss"])

    text = doc.read_text()
    assert "OLD TABLE" not in text
    assert text.startswith("# Perf\n\nintro\n") and text.rstrip().endswith("outro")
    assert "| a | small files" in text and "p2psync | 1/1 |" in text
    assert list(work.iterdir()) == [], "the harness left its temp dir behind"


def test_conditions_of_issue_22_run_end_to_end(tmp_path: Path) -> None:
    """(ii) data just written, not flushed, moved in; (iii) the source started with it."""
    out = tmp_path / "result.json"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--preset",
            "tiny",
            "--workloads",
            "b2,c3",
            "--repeat",
            "1",
            "--no-syncthing",
            "--no-limits",
            "--strict",
            "--no-doc",
            "--out",
            str(out),
            "--workdir",
            str(work),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = {r["workload"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(runs) == {"b2", "c3"} and all(r["ok"] for r in runs.values())
    assert runs["b2"]["data_bytes"] == 3 << 20 and runs["c3"]["data_bytes"] == 4 << 20
    # the source's data crossed the proxy, counted from its start
    assert all(r["wire_bytes"] > r["data_bytes"] for r in runs.values())
    assert all(len(r["cpu_s"]) == 2 and r["cpu_s"][0] > 0 for r in runs.values())


def test_scans_measured_on_the_daemon_through_its_api(tmp_path: Path) -> None:
    """f and h with --p2p-scan daemon: followed through the folder view and events."""
    out = tmp_path / "result.json"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--preset",
            "tiny",
            "--workloads",
            "f,h",
            "--p2p-scan",
            "daemon",
            "--repeat",
            "1",
            "--no-syncthing",
            "--no-limits",
            "--strict",
            "--no-doc",
            "--out",
            str(out),
            "--workdir",
            str(work),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = {r["workload"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(runs) == {"f", "h"} and all(r["ok"] for r in runs.values())
    assert all(r["extra"]["measured"] == "daemon via the control API" for r in runs.values())
    assert runs["f"]["data_bytes"] > 50 * 1024 and runs["h"]["extra"]["initial_seconds"] > 0
