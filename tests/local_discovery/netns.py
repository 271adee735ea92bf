"""Two network namespaces joined by a veth pair, created and removed by the test.

Broadcasts sent inside them never reach a real interface: the namespaces have only
``lo`` and their end of the veth (10.231.7.0/24), and no route out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

SUBNET = "10.231.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"p2pjprobe{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError):
        return False
    _ip("netns", "del", name)
    return True


needs_netns = pytest.mark.skipif(
    not netns_available(), reason="needs root and `ip netns` (iproute2) to isolate broadcasts"
)


@dataclass(frozen=True)
class Namespace:
    name: str
    address: str  # our end of the veth

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


@contextmanager
def namespace_pair() -> Iterator[tuple[Namespace, Namespace]]:
    tag = f"{os.getpid() % 100000}"
    a, b = Namespace(f"p2pj{tag}a", f"{SUBNET}.1"), Namespace(f"p2pj{tag}b", f"{SUBNET}.2")
    veth_a, veth_b = f"vj{tag}a", f"vj{tag}b"
    created: list[str] = []
    try:
        for ns in (a, b):
            _ip("netns", "add", ns.name)
            created.append(ns.name)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        for ns, veth in ((a, veth_a), (b, veth_b)):
            _ip("link", "set", veth, "netns", ns.name)
            _ip("-n", ns.name, "addr", "add", f"{ns.address}/24", "dev", veth)
            _ip("-n", ns.name, "link", "set", veth, "up")
            _ip("-n", ns.name, "link", "set", "lo", "up")
        yield a, b
    finally:
        for name in created:  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
