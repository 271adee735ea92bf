"""Relay settings in config.toml and relay addresses in discovery (both directions)."""

from __future__ import annotations

import pytest

from discovery_server.addresses import normalize_addresses
from p2psync.config import parse_config
from p2psync.errors import AnnouncementError, ConfigError
from p2psync.identity import DeviceID

RELAY_ID = DeviceID(bytes(range(32)))
RELAY = f"relay://127.0.0.1:22067/?id={RELAY_ID}"
PEER = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"


def test_relays_and_their_rate_limits_are_read_and_validated() -> None:
    cfg = parse_config(
        {
            "relays": [RELAY],
            "relay_max_send_kbps": 100,
            "devices": [{"id": PEER, "addresses": ["tcp://10.0.0.1:22001", RELAY, "dynamic"]}],
        }
    )
    assert cfg.relays == (RELAY,) and cfg.relay_max_send_kbps == 100
    assert str(cfg.devices[0].addresses[1]) == RELAY
    with pytest.raises(ConfigError, match=r"^relays\[0\]: .*needs exactly one id"):
        parse_config({"relays": ["relay://127.0.0.1:22067/"]})
    with pytest.raises(ConfigError, match=r"^devices\[0\]\.addresses\[0\]: .*not a device ID"):
        parse_config({"devices": [{"id": PEER, "addresses": ["relay://h:1/?id=nope"]}]})
    with pytest.raises(ConfigError, match="relay_max_recv_kbps: must be >= 0"):
        parse_config({"relay_max_recv_kbps": -1})


def test_the_discovery_server_keeps_relay_addresses_in_canonical_form() -> None:
    announced = [
        "tcp://0.0.0.0:22001",
        f"relay://relay.example.org:22067/?id={RELAY_ID}&pingInterval=1m0s&providedBy=x",
    ]
    assert normalize_addresses(announced, "192.0.2.7") == [
        "tcp://192.0.2.7:22001",
        f"relay://relay.example.org:22067/?id={RELAY_ID}",
    ]
    for bad in ("relay://relay.example.org:22067/", f"relay://0.0.0.0:22067/?id={RELAY_ID}"):
        with pytest.raises(AnnouncementError):
            normalize_addresses([bad], "192.0.2.7")
