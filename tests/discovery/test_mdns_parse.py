"""Pure parts of mDNS discovery: interface choice, URLs, record parsing."""

from __future__ import annotations

import pytest

from p2psync.discovery.mdns import (
    ALL_INTERFACES,
    INTERFACES_ENV,
    mdns_interfaces_from_env,
    parse_announcement,
    tcp_url,
)
from p2psync.endpoints import parse_endpoint
from p2psync.errors import ConfigError, RemoteProtocolError
from p2psync.identity import DeviceID

DEVICE = DeviceID(bytes(range(32)))


def test_env_overrides_config() -> None:
    env = {INTERFACES_ENV: " 127.0.0.1, ::1 ,"}
    assert mdns_interfaces_from_env(["192.168.1.2"], env) == ["127.0.0.1", "::1"]


def test_config_used_without_env() -> None:
    assert mdns_interfaces_from_env(["127.0.0.1"], {}) == ["127.0.0.1"]
    assert mdns_interfaces_from_env(["127.0.0.1"], {INTERFACES_ENV: "  "}) == ["127.0.0.1"]


def test_empty_config_means_all_interfaces() -> None:
    assert mdns_interfaces_from_env([], {}) is ALL_INTERFACES
    assert mdns_interfaces_from_env(None, {}) is ALL_INTERFACES


@pytest.mark.parametrize(
    ("default", "env"),
    [(["eth0"], {}), ([], {INTERFACES_ENV: "127.0.0.1,localhost"})],
)
def test_non_ip_interface_is_a_config_error(default: list[str], env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        mdns_interfaces_from_env(default, env)


def test_tcp_url_brackets_ipv6_and_round_trips_through_the_dialer_parser() -> None:
    assert tcp_url("127.0.0.1", 22000) == "tcp://127.0.0.1:22000"
    assert tcp_url("fe80::1%2", 22000) == "tcp://[fe80::1%2]:22000"
    for host in ("127.0.0.1", "::1", "fe80::1%2"):
        parsed = parse_endpoint(tcp_url(host, 22001))
        assert (parsed.host, parsed.port) == (host, 22001)


def test_parse_good_record() -> None:
    props = {b"id": str(DEVICE).encode(), b"v": b"1"}
    a = parse_announcement(props, 22000, ["127.0.0.1", "0.0.0.0", "127.0.0.1", "::1", "junk"])
    assert a.device_id == DEVICE
    assert a.addresses == ("tcp://127.0.0.1:22000", "tcp://[::1]:22000")


def test_parse_accepts_lenient_id_forms() -> None:
    props = {b"id": str(DEVICE).lower().replace("-", "").encode()}
    assert parse_announcement(props, 1, ["10.0.0.1"]).device_id == DEVICE


@pytest.mark.parametrize(
    ("props", "port", "hosts", "reason"),
    [
        ({}, 22000, ["127.0.0.1"], "no 'id'"),
        ({b"id": None}, 22000, ["127.0.0.1"], "no 'id'"),
        ({b"id": b"not-a-device-id"}, 22000, ["127.0.0.1"], "malformed device ID"),
        ({b"id": "é".encode()}, 22000, ["127.0.0.1"], "malformed device ID"),
        ({b"id": str(DEVICE)[:-1].encode() + b"A"}, 22000, ["127.0.0.1"], "malformed"),
        ({b"id": str(DEVICE).encode()}, None, ["127.0.0.1"], "invalid port"),
        ({b"id": str(DEVICE).encode()}, 0, ["127.0.0.1"], "invalid port"),
        ({b"id": str(DEVICE).encode()}, 70000, ["127.0.0.1"], "invalid port"),
        ({b"id": str(DEVICE).encode()}, 22000, [], "no usable address"),
        ({b"id": str(DEVICE).encode()}, 22000, ["0.0.0.0", "224.0.0.251"], "no usable"),
    ],
)
def test_parse_rejects_bad_records(
    props: dict[bytes, bytes | None], port: int | None, hosts: list[str], reason: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        parse_announcement(props, port, hosts)
