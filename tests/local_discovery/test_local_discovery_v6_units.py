"""The IPv6 parts of local discovery v4 that need no namespace: zones and interfaces."""

import socket

import pytest

from p2psync.discovery.local_v4 import _fill_host, _with_zone, multicast_interfaces
from p2psync.endpoints import parse_endpoint
from p2psync.errors import ConfigError


def test_a_link_local_sender_keeps_its_zone_and_fills_an_unspecified_host() -> None:
    lo = socket.if_indextoname(1)
    host = _with_zone(("fe80::1", 21027, 0, 1))
    assert host == f"fe80::1%{lo}"
    assert _with_zone(("fd00::1", 21027, 0, 1)) == "fd00::1"  # not link-local: no zone
    assert _with_zone(("10.0.0.1", 21027)) == "10.0.0.1"
    filled = _fill_host("tcp://[::]:22001", host)
    assert filled == f"tcp://[fe80::1%{lo}]:22001"
    endpoint = parse_endpoint(filled)
    assert (endpoint.host, endpoint.port) == (f"fe80::1%{lo}", 22001)
    assert _fill_host("tcp6://[fd00::2]:22001", host) == "tcp://[fd00::2]:22001"


def test_only_named_ipv6_addresses_choose_multicast_interfaces() -> None:
    assert multicast_interfaces(["127.0.0.1"]) == []  # IPv4 only: no multicast at all
    with pytest.raises(ConfigError, match="no interface has the address fd00:dead::1"):
        multicast_interfaces(["fd00:dead::1"])
