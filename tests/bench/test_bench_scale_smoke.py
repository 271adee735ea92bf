"""Keeps the scale workloads (j, k, k2; issue 22.3) from rotting: four p2psync daemons,
tiny sizes: the fourth fetching everything, a change reaching three peers, and a seeded
folder of many small files on a running pair."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_swarm_workloads_run(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", "--preset", "tiny", "--workloads", "k,k2",
            "--repeat", "1", "--no-syncthing", "--no-limits", "--strict", "--no-doc",
            "--out", str(out), "--workdir", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
        env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {r["workload"]: r for r in json.loads(out.read_text())["runs"]}
    k, k2 = runs["k"], runs["k2"]
    assert k["ok"] and k2["ok"], (k["error"], k2["error"])
    between = k["extra"]["bytes_between_D_and"]
    assert set(between) == {"A", "B", "C"}
    assert sum(between.values()) >= k["data_bytes"]  # all of it reached D from the holders
    assert set(k2["extra"]["per_receiver_s"]) == {"B", "C", "D"}
    assert len(k["peak_rss"]) == 4


@pytest.mark.timeout(200)
def test_many_files_workload_runs(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", "--preset", "tiny", "--workloads", "j",
            "--repeat", "1", "--no-syncthing", "--no-limits", "--strict", "--no-doc",
            "--out", str(out), "--workdir", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["ok"], run["error"]
    assert run["extra"]["files"] == 200
    assert {"in_sync_s", "rescan_s", "change_s"} <= set(run["extra"])
    assert len(run["peak_rss"]) == 2
