"""Fixtures for the TLS/trust/rate-limit tests: identities and connected TLS pairs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from net_helpers import handshake_pair, tcp_transport_pair

from p2psync.identity import Identity, generate_identity
from p2psync.net.tls import TLSStream, make_tls_context


@pytest.fixture(scope="session")
def alice() -> Identity:
    return generate_identity()


@pytest.fixture(scope="session")
def bob() -> Identity:
    return generate_identity()


@pytest.fixture(scope="session")
def mallory() -> Identity:
    return generate_identity()


PairMaker = Callable[[], Awaitable[tuple[TLSStream, TLSStream]]]


@pytest.fixture
def memory_tls_pair(alice: Identity, bob: Identity) -> PairMaker:
    """Makes handshaken (client, server) TLS streams over trio's in-memory streams."""
    client_ctx, server_ctx = make_tls_context(alice), make_tls_context(bob)

    async def make() -> tuple[TLSStream, TLSStream]:
        a, b = trio.testing.memory_stream_pair()
        return await handshake_pair(
            TLSStream(a, client_ctx, server_side=False), TLSStream(b, server_ctx, server_side=True)
        )

    return make


@pytest.fixture
def lockstep_tls_pair(alice: Identity, bob: Identity) -> PairMaker:
    """Like memory_tls_pair, but over unbuffered streams (send blocks until received)."""
    client_ctx, server_ctx = make_tls_context(alice), make_tls_context(bob)

    async def make() -> tuple[TLSStream, TLSStream]:
        a, b = trio.testing.lockstep_stream_pair()
        return await handshake_pair(
            TLSStream(a, client_ctx, server_side=False), TLSStream(b, server_ctx, server_side=True)
        )

    return make


@pytest.fixture
def tcp_tls_pair(alice: Identity, bob: Identity) -> PairMaker:
    """Makes handshaken (client, server) TLS streams over real loopback TCP."""
    client_ctx, server_ctx = make_tls_context(alice), make_tls_context(bob)

    async def make() -> tuple[TLSStream, TLSStream]:
        a, b = await tcp_transport_pair()
        return await handshake_pair(
            TLSStream(a, client_ctx, server_side=False), TLSStream(b, server_ctx, server_side=True)
        )

    return make
