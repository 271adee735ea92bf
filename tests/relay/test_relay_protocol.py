"""The relay protocol's wire format (sans I/O): byte-exact messages, incremental decoding."""

from __future__ import annotations

import pytest

from p2psync.errors import ConfigError
from p2psync.identity import DeviceID
from p2psync.protocol.relay import (
    ConnectRequest,
    JoinRelayRequest,
    JoinSessionRequest,
    Ping,
    Pong,
    RelayDecoder,
    RelayFull,
    RelayProtocolError,
    Response,
    SessionInvitation,
    encode,
    parse_relay_url,
)

ID = DeviceID(bytes(range(32)))


def test_header_and_xdr_body_are_byte_exact() -> None:
    assert encode(Ping()) == bytes.fromhex("9e79bc400000000000000000")
    assert encode(JoinRelayRequest()) == bytes.fromhex("9e79bc400000000200000000")
    assert encode(JoinRelayRequest("ab")) == bytes.fromhex(
        "9e79bc4000000002000000080000000261620000"
    )
    assert (
        encode(Response(1, "not found"))
        == bytes.fromhex("9e79bc4000000004000000140000000100000009") + b"not found\0\0\0"
    )
    invitation = SessionInvitation(ID.raw, b"k" * 32, bytes([127, 0, 0, 1]), 22067, True)
    body = (
        bytes.fromhex("00000020")
        + ID.raw
        + bytes.fromhex("00000020")
        + b"k" * 32
        + bytes.fromhex("00000004 7f000001 00005633 00000001")
    )
    assert (
        encode(invitation)
        == bytes.fromhex("9e79bc40 00000006") + len(body).to_bytes(4, "big") + body
    )


@pytest.mark.parametrize(
    "msg",
    [
        Ping(),
        Pong(),
        RelayFull(),
        JoinRelayRequest(),
        JoinRelayRequest("token-1"),
        JoinSessionRequest(b"\x01" * 32),
        Response(0, "success"),
        ConnectRequest(ID.raw),
        SessionInvitation(ID.raw, b"\x02" * 32, b"", 1, False),
    ],
)
def test_every_message_round_trips_byte_by_byte(msg: object) -> None:
    decoder = RelayDecoder()
    data = encode(msg)  # type: ignore[arg-type]
    for i, byte in enumerate(data):
        assert decoder.next_message() is None, f"a message after {i} bytes"
        decoder.feed(bytes([byte]))
    assert decoder.next_message() == msg
    assert decoder.next_message() is None


def test_bytes_after_a_message_stay_for_the_relayed_stream() -> None:
    decoder = RelayDecoder()
    decoder.feed(encode(Response(0, "success")) + b"\x16\x03\x01 TLS")
    assert decoder.next_message() == Response(0, "success")
    assert decoder.take_remaining() == b"\x16\x03\x01 TLS"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bytes.fromhex("9e79bc41 00000000 00000000"), "magic"),
        (bytes.fromhex("9e79bc40 00000000 00000401"), "length"),
        (bytes.fromhex("9e79bc40 00000000 ffffffff"), "length"),
        (bytes.fromhex("9e79bc40 00000063 00000000"), "type"),
        (bytes.fromhex("9e79bc40 00000004 00000004 00000000"), "truncated"),
        (bytes.fromhex("9e79bc40 00000005 00000008 00000021 00000000"), "exceeds"),
    ],
)
def test_malformed_input_is_refused(data: bytes, why: str) -> None:
    decoder = RelayDecoder()
    decoder.feed(data)
    with pytest.raises(RelayProtocolError, match=why):
        decoder.next_message()


def test_invitation_address_falls_back_to_the_relay_host() -> None:
    def host(address: bytes) -> str:
        return SessionInvitation(ID.raw, b"k" * 32, address, 1, False).host("relay.example")

    assert host(b"") == "relay.example"
    assert host(bytes(4)) == "relay.example"
    assert host(bytes(16)) == "relay.example"
    assert host(bytes([10, 0, 0, 7])) == "10.0.0.7"
    assert host(bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 7])) == "10.0.0.7"  # Go's To16 form


def test_relay_urls() -> None:
    url = parse_relay_url(f"relay://127.0.0.1:22067/?id={ID}&pingInterval=1m0s&statusAddr=")
    assert (url.host, url.port, url.device_id, url.token) == ("127.0.0.1", 22067, ID, "")
    assert str(url) == f"relay://127.0.0.1:22067/?id={ID}"
    assert parse_relay_url(f"relay://[::1]/?id={ID}&token=a b").port == 22067
    assert str(parse_relay_url(f"relay://[::1]/?id={ID}&token=a b")).endswith("&token=a%20b")
    for bad in (
        "relay://127.0.0.1:22067/",
        f"tcp://127.0.0.1:22067/?id={ID}",
        "relay://127.0.0.1:22067/?id=NOTANID",
        f"relay://127.0.0.1:99999/?id={ID}",
        f"relay://:22067/?id={ID}",
        f"relay://h:1/path?id={ID}",
        f"relay://h:1/?id={ID}&token={'x' * 257}",
    ):
        with pytest.raises(ConfigError):
            parse_relay_url(bad)
