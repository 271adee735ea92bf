"""Which announced addresses the server accepts, and how unspecified hosts are filled in."""

from __future__ import annotations

import pytest

from discovery_server.addresses import normalize_addresses
from p2psync.errors import AnnouncementError


@pytest.mark.parametrize(
    ("given", "source", "expected"),
    [
        ("tcp://192.0.2.1:22000", "10.0.0.1", "tcp://192.0.2.1:22000"),
        ("tcp://0.0.0.0:22000", "127.0.0.1", "tcp://127.0.0.1:22000"),
        ("tcp://[::]:22000", "127.0.0.1", "tcp://127.0.0.1:22000"),
        ("tcp://:22000", "2001:db8::7", "tcp://[2001:db8::7]:22000"),
        ("tcp://[2001:DB8::1]:1", "127.0.0.1", "tcp://[2001:db8::1]:1"),
        ("tcp://Node-1.Example.org:65535", "127.0.0.1", "tcp://node-1.example.org:65535"),
    ],
)
def test_accepted(given: str, source: str, expected: str) -> None:
    assert normalize_addresses([given], source) == [expected]


@pytest.mark.parametrize(
    "bad",
    [
        "http://192.0.2.1:22000",
        "quic://192.0.2.1:22000",
        "tcp://192.0.2.1",
        "tcp://192.0.2.1:0",
        "tcp://192.0.2.1:65536",
        "tcp://192.0.2.1:port",
        "tcp://192.0.2.1:22000/path",
        "tcp://192.0.2.1:22000?x=1",
        "tcp://user@192.0.2.1:22000",
        "tcp://[not-ipv6]:22000",
        "tcp://bad_host!:22000",
        "tcp://-leading.example:22000",
        "tcp://999.1.1.1:22000",
        "tcp://192.0.2.1:22000\n",
        "tcp://host with space:1",
        "tcp://" + "a" * 250 + ".example:1",
        "192.0.2.1:22000",
        "",
    ],
)
def test_rejected(bad: str) -> None:
    with pytest.raises(AnnouncementError) as info:
        normalize_addresses([bad], "127.0.0.1")
    assert info.value.reason == "bad-address"


def test_one_bad_address_rejects_all() -> None:
    with pytest.raises(AnnouncementError):
        normalize_addresses(["tcp://192.0.2.1:1", "http://192.0.2.1:2"], "127.0.0.1")


def test_limits_on_count_and_emptiness() -> None:
    sixteen = [f"tcp://192.0.2.1:{p}" for p in range(1, 17)]
    assert len(normalize_addresses(sixteen, "127.0.0.1")) == 16
    with pytest.raises(AnnouncementError, match="at most 16"):
        normalize_addresses([*sixteen, "tcp://192.0.2.1:17"], "127.0.0.1")
    with pytest.raises(AnnouncementError, match="no addresses"):
        normalize_addresses([], "127.0.0.1")


def test_duplicates_after_filling_in_are_dropped() -> None:
    got = normalize_addresses(["tcp://0.0.0.0:1", "tcp://127.0.0.1:1", "tcp://[::]:1"], "127.0.0.1")
    assert got == ["tcp://127.0.0.1:1"]


def test_unspecified_host_needs_a_known_source() -> None:
    with pytest.raises(AnnouncementError, match="source is unknown"):
        normalize_addresses(["tcp://0.0.0.0:1"], "")
