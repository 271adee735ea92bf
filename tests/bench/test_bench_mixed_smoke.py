"""Keeps the mixed-pair benchmark (issue 20) from rotting: the tiny workloads a and g on
a p2psync daemon and a stock Syncthing, each way, with their rows and ratios."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(400)
@pytest.mark.skipif(shutil.which("syncthing") is None, reason="needs Debian's syncthing")
def test_mixed_pairs_run_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", "--preset", "tiny", "--workloads", "a,g",
            "--repeat", "1", "--mixed", "--no-limits", "--strict", "--no-doc",
            "--out", str(out), "--workdir", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=380,
        env={**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    runs = {(r["workload"], r["system"]): r for r in record["runs"]}
    for wl in ("a", "g"):
        for system in ("p2psync>syncthing", "syncthing>p2psync"):
            assert runs[(wl, system)]["ok"], runs[(wl, system)]["error"]
    a_mixed = runs[("a", "p2psync>syncthing")]
    assert a_mixed["wire_bytes"] > a_mixed["data_bytes"] > 50 * 1024  # every byte crossed
    rows = {(r["workload"], r["system"]): r for r in record["summary"]}
    assert "ratio" in rows[("a", "syncthing>p2psync")]  # against Syncthing→Syncthing
    assert "p2psync>syncthing" in proc.stdout  # the printed table has the mixed rows
