"""TLSStream against trio's generic stream conformance checks."""

from __future__ import annotations

from trio.testing import check_half_closeable_stream


async def test_conformance_over_memory_streams(memory_tls_pair, lockstep_tls_pair):
    await check_half_closeable_stream(memory_tls_pair, lockstep_tls_pair)


async def test_conformance_over_loopback_tcp(tcp_tls_pair):
    await check_half_closeable_stream(tcp_tls_pair, None)
