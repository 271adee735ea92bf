"""The acceptance rules applied after the handshake."""

from __future__ import annotations

import pytest

from p2psync.errors import TrustError
from p2psync.identity import Identity
from p2psync.net.trust import PeerRejectedError, TrustFailure, authenticate_peer, single_certificate


def check(cert, *, us: Identity, expected=None, known=()):
    known_ids = {k.device_id for k in known}
    return authenticate_peer(
        cert, our_id=us.device_id, expected=expected, is_known=lambda d: d in known_ids
    )


def test_known_incoming_peer_is_accepted(alice, bob):
    assert check(bob.cert_der, us=alice, known=[bob]) == bob.device_id


def test_known_dialled_peer_is_accepted(alice, bob):
    assert check([bob.cert_der], us=alice, expected=bob.device_id, known=[bob]) == bob.device_id


def test_unknown_peer_is_refused_with_its_id(alice, bob, mallory):
    with pytest.raises(PeerRejectedError) as info:
        check(mallory.cert_der, us=alice, known=[bob])
    assert info.value.reason is TrustFailure.UNKNOWN_DEVICE
    assert info.value.device_id == mallory.device_id
    assert isinstance(info.value, TrustError)


def test_ourselves_is_refused_even_if_configured(alice):
    with pytest.raises(PeerRejectedError) as info:
        check(alice.cert_der, us=alice, known=[alice])
    assert info.value.reason is TrustFailure.SELF


def test_man_in_the_middle_is_refused_even_if_known(alice, bob, mallory):
    # We dial bob; the answer carries mallory's certificate. Knowing mallory does not help.
    with pytest.raises(PeerRejectedError) as info:
        check(mallory.cert_der, us=alice, expected=bob.device_id, known=[bob, mallory])
    assert info.value.reason is TrustFailure.UNEXPECTED_DEVICE
    assert info.value.device_id == mallory.device_id
    assert info.value.expected == bob.device_id
    assert str(bob.device_id) in str(info.value)


@pytest.mark.parametrize("cert", [None, b"", [], ()], ids=["none", "empty", "no-chain", "tuple"])
def test_no_certificate_is_refused(alice, bob, cert):
    with pytest.raises(PeerRejectedError) as info:
        check(cert, us=alice, known=[bob])
    assert info.value.reason is TrustFailure.NO_CERTIFICATE
    assert info.value.device_id is None


def test_more_than_one_certificate_is_refused(alice, bob, mallory):
    with pytest.raises(PeerRejectedError) as info:
        check([bob.cert_der, mallory.cert_der], us=alice, known=[bob, mallory])
    assert info.value.reason is TrustFailure.EXTRA_CERTIFICATES


def test_single_certificate(bob):
    assert single_certificate([bob.cert_der]) == bob.cert_der
    with pytest.raises(PeerRejectedError):
        single_certificate([])
