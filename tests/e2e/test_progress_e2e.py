"""A user watches a big file arrive with `p2psync status`: progress by bytes, the file
being pulled and from whom, an ETA, each device's completion, and rates that drop to 0
once the transfer ends (issue 18.9)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import two_nodes
from test_cli_daemon import ok, wait_for
from two_nodes import folder_of, share, status

pair = two_nodes.pair  # the fixture

BIG = 24 * 1024 * 1024
RECV_KIBPS = 3000  # about 8 s for the big file


def test_status_shows_byte_progress_source_eta_and_completion(pair) -> None:
    # b receives slowly, so the transfer can be watched
    nodes = pair(lambda cfg: replace(cfg, max_recv_kbps=RECV_KIBPS))
    (home_a, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    data_a.mkdir(parents=True)
    content = os.urandom(BIG)
    (data_a / "big.bin").write_bytes(content)
    share(nodes, "media")

    def midway() -> dict | None:
        f = folder_of(home_b, "media")
        pulling = [p for p in f.get("pulling", []) if p["name"] == "big.bin"]
        if pulling and 0 < pulling[0]["done"] < BIG and 0 < f["completion"] < 100:
            return f
        return None

    f = wait_for(midway, timeout=30, what="big.bin partly pulled on b")
    [p] = [p for p in f["pulling"] if p["name"] == "big.bin"]
    assert [s["name"] for s in p["from"]] == ["a"] and p["from"][0]["bytes"] > 0
    assert p["size"] == BIG and 0 < p["percent"] < 100
    assert f["in_place_bytes"] > 0
    # the ETA and rate come from bytes moving; they need a second sample
    f = wait_for(
        lambda: (g := folder_of(home_b, "media"))["eta_s"] is not None and g,
        timeout=10,
        what="an ETA",
    )
    assert f["eta_s"] > 0 and f["pull_bps"] > 0
    human = ok(home_b, "status")
    assert "pulling big.bin" in human and "from a" in human and "ETA" in human
    # on a, b's completion by bytes: behind while the file is on its way
    [dev_b] = folder_of(home_a, "media")["devices"]
    assert dev_b["completion"] < 100 and dev_b["need_bytes"] > 0

    wait_for(
        lambda: (data_b / "big.bin").exists() and (data_b / "big.bin").read_bytes() == content,
        timeout=60,
        what="big.bin on b",
    )
    wait_for(
        lambda: (
            folder_of(home_b, "media")["completion"] == 100
            and not folder_of(home_b, "media")["pulling"]
        ),
        what="b complete",
    )
    # rates drop to 0 within a couple of polls of the end, not over the next 10 s
    status(home_b)
    wait_for(
        lambda: next(d for d in status(home_b)["devices"] if d["name"] == "a")["in_bps"] == 0,
        timeout=3,
        what="b's receive rate back to 0",
    )
    wait_for(
        lambda: folder_of(home_a, "media")["devices"][0]["completion"] == 100,
        what="b complete as seen from a",
    )
    api = json.loads(ok(home_a, "folder", "completion", "media", "--device", "b", "--json"))
    assert api["completion"] == 100 and api["need_bytes"] == 0
