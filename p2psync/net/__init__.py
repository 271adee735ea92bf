"""Networking: mutual TLS over trio, trust rules, addresses and rate limits."""

from ..endpoints import DEFAULT_PORT, Endpoint, is_dynamic, parse_addresses, parse_endpoint
from ..values import DYNAMIC
from .ratelimit import RateLimitedStream, TokenBucket, acquire_all
from .tls import ALPN_PROTOCOL, TLSStream, make_tls_context, tls_accept, tls_connect
from .trust import PeerRejectedError, TrustFailure, authenticate_peer, single_certificate

__all__ = [
    "ALPN_PROTOCOL",
    "DEFAULT_PORT",
    "DYNAMIC",
    "Endpoint",
    "PeerRejectedError",
    "RateLimitedStream",
    "TLSStream",
    "TokenBucket",
    "TrustFailure",
    "acquire_all",
    "authenticate_peer",
    "is_dynamic",
    "make_tls_context",
    "parse_addresses",
    "parse_endpoint",
    "single_certificate",
    "tls_accept",
    "tls_connect",
]
