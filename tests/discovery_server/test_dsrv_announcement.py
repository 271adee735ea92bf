"""Signed announcements: building, verifying and every way to get one rejected."""

from __future__ import annotations

import base64

import pytest

from p2psync.discovery.announcement import (
    canonical_server_url,
    sign_announcement,
    signing_bytes,
    verify_announcement,
)
from p2psync.errors import AnnouncementError, RemoteProtocolError
from p2psync.identity import DeviceID, Identity

URL = "https://disco.example.org:22027"
NOW = 1_700_000_000
ADDRS = ["tcp://192.0.2.1:22000", "tcp://0.0.0.0:22000"]


def _reason(body: object, url: str = URL, now: float = NOW) -> str:
    with pytest.raises(AnnouncementError) as info:
        verify_announcement(body, url, now)
    assert str(info.value)  # a message for the log / the client
    return info.value.reason


def test_round_trip(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    assert verify_announcement(body, URL, NOW) == (identity.device_id, ADDRS)


def test_announcement_error_is_a_remote_protocol_error() -> None:
    assert issubclass(AnnouncementError, RemoteProtocolError)


def test_canonical_bytes_are_stable() -> None:
    device = DeviceID(bytes(range(32)))
    got = signing_bytes(
        device, ["tcp://h:1", "tcp://[::1]:2"], 12, "HTTPS://Disco.Example:443/x/?a=1"
    )
    assert got == (
        b'["p2psync-announce-v1","' + str(device).encode() + b'",'
        b'"https://disco.example:443/x",12,["tcp://h:1","tcp://[::1]:2"]]'
    )


def test_server_url_is_canonicalised() -> None:
    assert canonical_server_url("HTTPS://Disco.Example.org:22027/") == URL


def test_trailing_slash_and_case_of_url_do_not_matter(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL + "/")
    assert (
        verify_announcement(body, "HTTPS://DISCO.example.org:22027", NOW)[0] == identity.device_id
    )


def test_certificate_as_base64_der(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    body["certificate"] = base64.b64encode(identity.cert_der).decode()
    assert verify_announcement(body, URL, NOW)[0] == identity.device_id


def test_device_field_is_optional(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    del body["device"]
    assert verify_announcement(body, URL, NOW)[0] == identity.device_id


def test_tampered_addresses_fail_the_signature(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    body["addresses"] = ["tcp://198.51.100.9:22000"]
    assert _reason(body) == "bad-signature"


def test_tampered_timestamp_fails_the_signature(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    body["timestamp"] = NOW + 1
    assert _reason(body) == "bad-signature"


def test_announcement_for_another_server_is_rejected(identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, "https://other.example.org:22027")
    assert _reason(body) == "bad-signature"


def test_signature_by_another_key(identity: Identity, other_identity: Identity) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    forged = sign_announcement(other_identity, ADDRS, NOW, URL)
    body["signature"] = forged["signature"]
    assert _reason(body) == "bad-signature"


def test_certificate_of_another_device_than_claimed(
    identity: Identity, other_identity: Identity
) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    body["certificate"] = other_identity.cert_pem.decode()
    assert _reason(body) == "bad-certificate"


def test_swapped_certificate_without_device_field(
    identity: Identity, other_identity: Identity
) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    del body["device"]
    body["certificate"] = other_identity.cert_pem.decode()
    assert _reason(body) == "bad-signature"


@pytest.mark.parametrize("skew", [-121, 121, -10_000, 10_000])
def test_stale_or_future_timestamps(identity: Identity, skew: int) -> None:
    body = sign_announcement(identity, ADDRS, NOW + skew, URL)
    assert _reason(body) == "stale-timestamp"


@pytest.mark.parametrize("skew", [-120, 0, 120])
def test_timestamps_inside_the_window(identity: Identity, skew: int) -> None:
    body = sign_announcement(identity, ADDRS, NOW + skew, URL)
    assert verify_announcement(body, URL, NOW)[0] == identity.device_id


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("timestamp", "1700000000", "malformed"),
        ("timestamp", True, "malformed"),
        ("timestamp", None, "malformed"),
        ("addresses", "tcp://192.0.2.1:1", "malformed"),
        ("addresses", [1, 2], "malformed"),
        ("signature", "not base64!!", "malformed"),
        ("signature", 5, "malformed"),
        (
            "certificate",
            "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----",
            "bad-certificate",
        ),
        ("certificate", base64.b64encode(b"not a certificate").decode(), "bad-certificate"),
        ("certificate", "x" * 10_000, "malformed"),
        ("device", "NOT-A-DEVICE-ID", "malformed"),
        ("device", 42, "malformed"),
    ],
)
def test_malformed_fields(identity: Identity, field: str, value: object, reason: str) -> None:
    body = sign_announcement(identity, ADDRS, NOW, URL)
    body[field] = value
    assert _reason(body) == reason


@pytest.mark.parametrize("body", [None, [], "text", 5])
def test_body_must_be_an_object(body: object) -> None:
    assert _reason(body) == "malformed"
