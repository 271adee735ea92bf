"""Two network namespaces joined by a veth pair, created and removed by the test.

Broadcasts sent inside them never reach a real interface: the namespaces have only
``lo`` and their end of the veth (10.231.7.0/24), and no route out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
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


@contextmanager
def nat_topology() -> Iterator[tuple[Namespace, Namespace, Namespace, Callable[[], None]]]:
    """Nodes A and B each behind their own link to a middle namespace R that runs the
    relay and the discovery server at ``R.address`` (10.231.10.1, reached by both).
    R does not forward, so A and B cannot reach each other at all: both are "behind NAT".
    Calling the returned ``open_path()`` makes R a router and gives A and B routes to
    each other's link: from then on they can dial each other directly."""
    tag = f"{os.getpid() % 100000}"
    a = Namespace(f"p2pj{tag}na", "10.231.8.1")
    b = Namespace(f"p2pj{tag}nb", "10.231.9.1")
    r = Namespace(f"p2pj{tag}nr", "10.231.10.1")
    created: list[str] = []
    try:
        for ns in (a, b, r):
            _ip("netns", "add", ns.name)
            created.append(ns.name)
            _ip("-n", ns.name, "link", "set", "lo", "up")
        _ip("-n", r.name, "addr", "add", f"{r.address}/32", "dev", "lo")
        for ns, net, side in ((a, "10.231.8", "a"), (b, "10.231.9", "b")):
            ours, theirs = f"vj{tag}{side}0", f"vj{tag}{side}1"
            _ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
            _ip("link", "set", ours, "netns", ns.name)
            _ip("link", "set", theirs, "netns", r.name)
            _ip("-n", ns.name, "addr", "add", f"{net}.1/24", "dev", ours)
            _ip("-n", r.name, "addr", "add", f"{net}.2/24", "dev", theirs)
            _ip("-n", ns.name, "link", "set", ours, "up")
            _ip("-n", r.name, "link", "set", theirs, "up")
            _ip("-n", ns.name, "route", "add", f"{r.address}/32", "via", f"{net}.2")
        subprocess.run(r.command("sysctl", "-qw", "net.ipv4.ip_forward=0"), check=True, timeout=20)

        def open_path() -> None:
            subprocess.run(
                r.command("sysctl", "-qw", "net.ipv4.ip_forward=1"), check=True, timeout=20
            )
            _ip("-n", a.name, "route", "add", "10.231.9.0/24", "via", "10.231.8.2")
            _ip("-n", b.name, "route", "add", "10.231.8.0/24", "via", "10.231.9.2")

        yield a, b, r, open_path
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
