"""A relayed connection is held to ``relay_max_send_kbps``; a direct one is not.

Two daemons that can only meet through a real strelaysrv; the sender's relay limit is
set through the running daemon. A token bucket of R bytes/s holding at most R bytes
(one second's worth) cannot pass S bytes in less than (S - R) / R seconds, so that is a
lower bound on the relayed transfer whatever the machine's load. Once the receiver learns
the sender's direct address, the same amount of data is not held to it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from strelaysrv_process import Relay
from test_cli_daemon import ok, wait_for
from test_relay_e2e import Node, arrives, relayed_pair, write

LIMIT_KIB = 128
SIZE = 2 * 1024 * 1024  # random, so no compression helps
LOWER_BOUND_S = (SIZE - LIMIT_KIB * 1024) / (LIMIT_KIB * 1024)  # 15 s


def timed_transfer(sender: Node, receiver: Node, name: str) -> float:
    payload = os.urandom(SIZE)
    started = time.monotonic()
    write(sender, name, payload)
    wait_for(lambda: arrives(receiver, name, payload), 120, f"{name} on {receiver.name}")
    return time.monotonic() - started


def test_relay_limit_holds_a_relayed_connection_and_not_a_direct_one(
    tmp_path: Path, relay: Relay
) -> None:
    with relayed_pair(tmp_path, relay) as (a, b):
        write(a, "hello.txt", b"connected\n")
        wait_for(lambda: arrives(b, "hello.txt", b"connected\n"), 60, "the first file on b")
        assert a.peer()["relayed"]
        ok(a.home, "config", "set", "relay_max_send_kbps", str(LIMIT_KIB))

        relayed_s = timed_transfer(a, b, "relayed.bin")
        assert a.peer()["relayed"]
        assert relayed_s >= LOWER_BOUND_S, (relayed_s, LOWER_BOUND_S)

        # b learns a's real address: the direct connection replaces the relayed one
        ok(b.home, "peer", "add", a.device_id, "--address", a.listen, "--address", relay.url)
        wait_for(lambda: (p := a.peer())["connected"] and not p["relayed"], 30, "direct on a")
        direct_s = timed_transfer(a, b, "direct.bin")
        assert not a.peer()["relayed"]
        assert direct_s < LOWER_BOUND_S, (direct_s, relayed_s)
