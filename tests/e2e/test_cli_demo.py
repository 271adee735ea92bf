"""`p2psync demo` end to end: two real daemons, a file arrives, everything is cleaned up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_syncs_a_file_and_cleans_up() -> None:
    env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}
    r = subprocess.run(
        [sys.executable, "-m", "p2psync.cli", "demo", "--timeout", "25"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello.txt arrived on bob" in r.stdout and r.stdout.rstrip().endswith("Demo complete.")
    base = Path(re.search(r"Creating two nodes in (\S+)", r.stdout).group(1))
    assert not base.exists()
    addresses = re.findall(r"(?:listens on|API) \S*?//([\d.]+):", r.stdout)
    assert addresses and set(addresses) == {"127.0.0.1"}
