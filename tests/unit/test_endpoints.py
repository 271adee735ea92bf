"""Parsing device and listen addresses."""

from __future__ import annotations

import pytest

from p2psync.endpoints import Endpoint, is_dynamic, parse_addresses, parse_endpoint
from p2psync.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected", "unspecified", "loopback"),
    [
        ("tcp://127.0.0.1:22001", Endpoint("tcp", "127.0.0.1", 22001), False, True),
        ("tcp://[::1]:22001", Endpoint("tcp", "::1", 22001), False, True),
        ("tcp://0.0.0.0:22001", Endpoint("tcp", "0.0.0.0", 22001), True, False),
        ("tcp://[::]:0", Endpoint("tcp", "::", 0), True, False),
        ("tcp://:22000", Endpoint("tcp", "", 22000), True, False),
        ("TCP://Example.COM", Endpoint("tcp", "example.com", 22000), False, False),
        (" tcp4://10.0.0.1:5 ", Endpoint("tcp4", "10.0.0.1", 5), False, False),
        ("tcp6://[fe80::1]:7", Endpoint("tcp6", "fe80::1", 7), False, False),
    ],
)
def test_valid_addresses(text, expected, unspecified, loopback):
    endpoint = parse_endpoint(text)
    assert endpoint == expected
    assert endpoint.is_unspecified is unspecified
    assert endpoint.is_loopback is loopback
    assert parse_endpoint(str(endpoint)) == endpoint


def test_str_brackets_ipv6():
    assert str(parse_endpoint("tcp://[::1]:22001")) == "tcp://[::1]:22001"
    assert str(parse_endpoint("tcp://127.0.0.1")) == "tcp://127.0.0.1:22000"


@pytest.mark.parametrize(
    "text",
    [
        "dynamic",
        "127.0.0.1:22000",
        "udp://127.0.0.1:1",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:port",
        "tcp://[::1:1",
        "tcp://[127.0.0.1]:1",
        "tcp4://[::1]:1",
        "tcp6://127.0.0.1:1",
        "tcp://host:1/path",
        "tcp://user@host:1",
        "",
    ],
)
def test_invalid_addresses(text):
    with pytest.raises(ConfigError):
        parse_endpoint(text)


def test_dynamic_and_lists():
    assert is_dynamic(" Dynamic ")
    assert not is_dynamic("tcp://dynamic:1")
    dynamic, endpoints = parse_addresses(["dynamic", "tcp://127.0.0.1:1"])
    assert dynamic
    assert endpoints == [Endpoint("tcp", "127.0.0.1", 1)]
    assert parse_addresses([]) == (False, [])
