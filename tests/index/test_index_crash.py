"""A writer killed in the middle of a transaction leaves the last committed state."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from index_helpers import LOCAL, make_file

from p2psync.index import Counts, IndexStore

# The child commits batch 1, then starts batch 2 inside the writer's transaction with a
# tiny page cache (so uncommitted pages spill into the WAL file), reports the WAL size
# before and during batch 2, and blocks there until it is killed.
CHILD = r"""
import os, sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from index_helpers import make_file
from p2psync.index import IndexStore

store = IndexStore.open(Path(sys.argv[1]), bytes.fromhex(sys.argv[2]))
wal = Path(sys.argv[1] + "-wal")
store.update_local("f", [make_file(f"batch1/{i:03d}") for i in range(100)])
committed = wal.stat().st_size

def stuck(conn):
    conn.execute("PRAGMA cache_size = 8")
    store._mutations.update_local(conn, "f", [make_file(f"batch2/{i:04d}") for i in range(3000)])
    print("ready", committed, wal.stat().st_size, flush=True)
    threading.Event().wait()

store._write(stuck)
"""


def test_kill_mid_batch_keeps_the_committed_batch(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), LOCAL.hex(), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().split()  # blocks until the child is inside batch 2
        assert line and line[0] == "ready", "the writer child died early"
        committed, during = int(line[1]), int(line[2])
        assert during > committed  # uncommitted batch-2 pages reached the WAL on disk
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with IndexStore.open(db, LOCAL) as store:
        names = [fi.name for fi in store.iter_local("f")]
        assert names == [f"batch1/{i:03d}" for i in range(100)]
        assert store.max_sequence("f", LOCAL) == 100
        assert store.counts("f") == Counts(files=100, bytes=1000)
        assert store.global_counts("f") == Counts(files=100, bytes=1000)
        # Writing continues where the committed state left off.
        [fi] = store.update_local("f", [make_file("after")])
        assert fi.sequence == 101
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
