"""Two network namespaces joined by a veth pair, created and removed by the test.

Broadcasts sent inside them never reach a real interface: the namespaces have only
``lo`` and their end of the veth (10.231.7.0/24), and no route out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
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


NFT = shutil.which("nft")
needs_nft = pytest.mark.skipif(
    NFT is None, reason="needs nft (Debian package nftables) to masquerade in a namespace"
)
SERVICES = "10.231.60.1"  # the "internet" namespace's address for the relay and discovery


@dataclass(frozen=True)
class NatSite:
    """A host behind its own NAT router: the host's namespace, the router's, and the
    router's public (WAN) address, which is all the rest of the world ever sees."""

    host: Namespace
    router: Namespace
    public: str


def _nft(ns: Namespace, script: str) -> None:
    assert NFT is not None
    subprocess.run(
        ns.command(NFT, "-f", "-"), input=script.encode(), check=True, capture_output=True,
        timeout=20,
    )  # fmt: skip


def _sysctl(ns: Namespace, setting: str) -> None:
    subprocess.run(ns.command("sysctl", "-qw", setting), check=True, timeout=20)


@contextmanager
def masquerade_topology() -> Iterator[tuple[NatSite, NatSite, Namespace]]:
    """Two sites, each a host on a private LAN (10.231.41.0/24, 10.231.42.0/24) behind a
    router namespace that masquerades (nftables) onto its WAN link to an "internet"
    namespace (WANs 10.231.51.0/24, 10.231.52.0/24; the routers are .2). The internet
    namespace forwards between the WANs and has ``SERVICES`` on its loopback; it has no
    route to either LAN. Each router forwards LAN -> WAN and replies only (policy drop),
    so nothing from outside can open a connection to a host, exactly like a home router.
    Everything lives in namespaces created here and deleted on exit."""
    tag = f"{os.getpid() % 100000}"
    inet = Namespace(f"p2pr{tag}i", SERVICES)
    sites = [
        NatSite(
            Namespace(f"p2pr{tag}{s}", f"10.231.4{n}.2"),
            Namespace(f"p2pr{tag}{s}r", f"10.231.4{n}.1"),
            f"10.231.5{n}.2",
        )
        for s, n in (("a", 1), ("b", 2))
    ]
    created: list[str] = []
    try:
        for ns in (inet, *(x for site in sites for x in (site.host, site.router))):
            _ip("netns", "add", ns.name)
            created.append(ns.name)
            _ip("-n", ns.name, "link", "set", "lo", "up")
        _ip("-n", inet.name, "addr", "add", f"{SERVICES}/32", "dev", "lo")
        _sysctl(inet, "net.ipv4.ip_forward=1")
        for n, site in enumerate(sites, start=1):
            lan, wan = f"10.231.4{n}", f"10.231.5{n}"
            host_if, lan_if, wan_if, inet_if = (f"vr{tag}{n}{x}" for x in "hlwi")
            for one, other, ns_one, ns_other in (
                (host_if, lan_if, site.host, site.router),
                (wan_if, inet_if, site.router, inet),
            ):
                _ip("link", "add", one, "type", "veth", "peer", "name", other)
                _ip("link", "set", one, "netns", ns_one.name)
                _ip("link", "set", other, "netns", ns_other.name)
            for ns, ifname, address in (
                (site.host, host_if, f"{lan}.2"),
                (site.router, lan_if, f"{lan}.1"),
                (site.router, wan_if, f"{wan}.2"),
                (inet, inet_if, f"{wan}.1"),
            ):
                _ip("-n", ns.name, "addr", "add", f"{address}/24", "dev", ifname)
                _ip("-n", ns.name, "link", "set", ifname, "up")
            _ip("-n", site.host.name, "route", "add", "default", "via", f"{lan}.1")
            _ip("-n", site.router.name, "route", "add", "default", "via", f"{wan}.1")
            _sysctl(site.router, "net.ipv4.ip_forward=1")
            _nft(
                site.router,
                f"""
table ip nat {{
    chain prerouting {{ type nat hook prerouting priority dstnat; }}
    chain postrouting {{
        type nat hook postrouting priority srcnat;
        oifname "{wan_if}" counter masquerade
    }}
}}
table ip filter {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "{lan_if}" oifname "{wan_if}" accept
        ct status dnat accept
    }}
}}
""",
            )
        yield sites[0], sites[1], inet
    finally:
        for name in created:  # the veth pairs go with their namespaces
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def forward_port(site: NatSite, port: int) -> None:
    """Port forwarding on the site's router: WAN ``port`` to the host's ``port``."""
    _nft(site.router, f"add rule ip nat prerouting ip daddr {site.public} tcp dport {port} "
                      f"dnat to {site.host.address}:{port}\n")  # fmt: skip


def masqueraded_packets(site: NatSite) -> int:
    """Packets the site's router has masqueraded so far (the rule's counter)."""
    assert NFT is not None
    out = subprocess.run(
        site.router.command(NFT, "list", "chain", "ip", "nat", "postrouting"),
        check=True, capture_output=True, text=True, timeout=20,
    ).stdout  # fmt: skip
    return sum(int(word) for word in _after(out.split(), "packets"))


def _after(words: list[str], key: str) -> Iterator[str]:
    for i, word in enumerate(words[:-1]):
        if word == key:
            yield words[i + 1]


ULA = "fd00:231:7::"  # the IPv6 prefix add_ipv6 gives a namespace_pair's veth ends


def add_ipv6(pair: tuple[Namespace, Namespace]) -> tuple[str, str]:
    """Give a namespace_pair's veth ends ULA addresses (``ULA`` 1 and 2, no DAD) and wait
    until their link-local addresses are usable too (multicast is sent from those)."""
    addresses = (f"{ULA}1", f"{ULA}2")
    for ns, address in zip(pair, addresses, strict=True):
        veth = _veth_of(ns)
        _ip("-n", ns.name, "addr", "add", f"{address}/64", "dev", veth, "nodad")
    deadline = time.monotonic() + 20
    for ns in pair:
        while True:
            out = subprocess.run(
                ns.command("ip", "-6", "addr", "show", "dev", _veth_of(ns), "tentative"),
                capture_output=True, text=True, check=True, timeout=20,
            ).stdout  # fmt: skip
            if "inet6" not in out:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"IPv6 addresses in {ns.name} stay tentative: {out}")
            time.sleep(0.05)
    return addresses


def _veth_of(ns: Namespace) -> str:
    out = subprocess.run(
        ns.command("ip", "-o", "link", "show", "type", "veth"),
        capture_output=True, text=True, check=True, timeout=20,
    ).stdout  # fmt: skip
    return out.split(":")[1].strip().split("@")[0]
