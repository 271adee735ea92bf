"""The store is fast enough for big folders (generous bounds; CI has 2 cores)."""

from __future__ import annotations

import time

from index_helpers import DEV_A, make_file

from p2psync.index import IndexStore


def test_ten_thousand_local_files_in_batches(store: IndexStore) -> None:
    files = [make_file(f"d{i // 100:03d}/f{i:05d}") for i in range(10_000)]
    start = time.perf_counter()
    for i in range(0, len(files), 500):
        store.update_local("f", files[i : i + 500])
    elapsed = time.perf_counter() - start
    assert store.max_sequence("f", store.local_device) == 10_000
    assert elapsed < 6.0, f"update_local of 10,000 files took {elapsed:.2f}s"

    remote = [fi.with_(version=((1, 1), (2, 1)), sequence=n + 1) for n, fi in enumerate(files)]
    store.update_remote("f", DEV_A, remote)
    start = time.perf_counter()
    streamed = sum(1 for _ in store.iter_need("f"))
    elapsed = time.perf_counter() - start
    assert streamed == 10_000
    assert elapsed < 3.0, f"streaming 10,000 needed files took {elapsed:.2f}s"
