"""Who may connect: the acceptance rules applied after the TLS handshake (pure).

Trust is by device ID only, the SHA-256 of the one certificate the peer presented.
The order of the checks matters: a certificate problem first, then ourselves, then a
dialled device answering with someone else's certificate, then unknown devices (which
the caller records as pending so the user can accept them).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from ..errors import TrustError
from ..identity import DeviceID


class TrustFailure(enum.Enum):
    """Why a peer was refused."""

    NO_CERTIFICATE = "no-certificate"
    EXTRA_CERTIFICATES = "extra-certificates"
    SELF = "self"
    UNEXPECTED_DEVICE = "unexpected-device"
    UNKNOWN_DEVICE = "unknown-device"


class PeerRejectedError(TrustError):
    """The peer is not a trusted device, is ourselves, or is not who it claims to be.

    ``reason`` says which; ``device_id`` is the peer's ID when it presented exactly one
    certificate (for UNKNOWN_DEVICE the caller records it as pending); ``expected`` is
    the device we dialled, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: TrustFailure,
        device_id: DeviceID | None = None,
        expected: DeviceID | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.device_id = device_id
        self.expected = expected


def single_certificate(chain: Sequence[bytes]) -> bytes:
    """The one DER certificate in ``chain``; refuse none or several (as Syncthing does)."""
    if not chain:
        raise PeerRejectedError(
            "the peer presented no certificate", reason=TrustFailure.NO_CERTIFICATE
        )
    if len(chain) != 1:
        raise PeerRejectedError(
            f"the peer presented {len(chain)} certificates; exactly one is allowed",
            reason=TrustFailure.EXTRA_CERTIFICATES,
        )
    return bytes(chain[0])


def authenticate_peer(
    peer_cert_der: bytes | Sequence[bytes] | None,
    *,
    our_id: DeviceID,
    expected: DeviceID | None,
    is_known: Callable[[DeviceID], bool],
) -> DeviceID:
    """Return the peer's device ID if it may talk to us, else raise PeerRejectedError.

    ``peer_cert_der`` is the peer's DER certificate, or the whole chain it sent
    (``TLSStream.peer_certificate_chain_der()``), which must hold exactly one.
    ``expected`` is the device we dialled (None for an incoming connection).
    """
    if peer_cert_der is None:
        cert = single_certificate(())
    elif isinstance(peer_cert_der, bytes | bytearray | memoryview):
        cert = single_certificate((bytes(peer_cert_der),) if peer_cert_der else ())
    else:
        cert = single_certificate(peer_cert_der)
    device_id = DeviceID.from_cert_der(cert)
    if device_id == our_id:
        raise PeerRejectedError(
            "connected to ourselves (the peer has this device's certificate)",
            reason=TrustFailure.SELF,
            device_id=device_id,
            expected=expected,
        )
    if expected is not None and device_id != expected:
        raise PeerRejectedError(
            f"dialled device {expected} but the peer is {device_id}: wrong address, or a "
            "man in the middle",
            reason=TrustFailure.UNEXPECTED_DEVICE,
            device_id=device_id,
            expected=expected,
        )
    if not is_known(device_id):
        raise PeerRejectedError(
            f"device {device_id} is not a configured peer",
            reason=TrustFailure.UNKNOWN_DEVICE,
            device_id=device_id,
            expected=expected,
        )
    return device_id
