"""Caps on unauthenticated incoming connections: the counting rules, and the accept loop
on a real loopback listener (over a cap: closed before any byte is read)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2psync.net.admission import (
    Admission,
    AdmissionLimits,
    address_key,
    serve_admitted,
)


def test_global_and_per_address_caps() -> None:
    admission = Admission(AdmissionLimits(total=5, per_address=2))
    a1, a2 = admission.try_admit("10.0.0.1"), admission.try_admit("10.0.0.1")
    assert a1 is not None and a2 is not None
    assert admission.try_admit("10.0.0.1") is None  # per address
    others = [admission.try_admit(f"10.0.0.{i}") for i in (2, 3, 4)]
    assert all(t is not None for t in others)
    assert admission.try_admit("10.0.0.9") is None  # in all
    assert admission.statistics().in_flight == 5
    assert admission.statistics().refused == 2
    a1.release()
    a1.release()  # idempotent: frees one place, not two
    assert admission.statistics().in_flight == 4
    assert admission.try_admit("10.0.0.1") is not None
    assert admission.try_admit("10.0.0.1") is None


def test_tickets_free_their_place_as_context_managers() -> None:
    admission = Admission(AdmissionLimits(total=1, per_address=1))
    with admission.try_admit("::1") as ticket:  # type: ignore[union-attr]
        assert ticket is not None
        assert admission.try_admit("::1") is None
    assert admission.statistics().in_flight == 0
    assert admission.statistics().addresses == 0


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_addresses_count_by_their_64(host: str, key: str) -> None:
    assert address_key(host) == key


@pytest.mark.parametrize(
    ("soft", "total"), [(0, 256), (20000, 256), (1024, 256), (512, 128), (300, 44), (16, 8)]
)
def test_limits_leave_room_under_the_open_file_limit(soft: int, total: int) -> None:
    limits = AdmissionLimits.for_open_files(soft)
    assert limits.total == total
    assert limits.per_address <= limits.total


async def test_connections_over_the_cap_are_closed_at_once() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    admission = Admission(AdmissionLimits(total=100, per_address=3))
    held: list[trio.SocketStream] = []
    released = trio.Event()
    fourth = trio.Event()

    async def handler(stream: trio.SocketStream, ticket) -> None:
        held.append(stream)
        if len(held) == 4:
            fourth.set()
        with ticket:
            await released.wait()
        await stream.aclose()

    async def closed_by_server(stream: trio.SocketStream) -> bool:
        with trio.move_on_after(5):
            return await stream.receive_some() == b""
        return False

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_admitted, listeners[0], admission, handler, nursery)
            clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(5)]
            # The two over the cap see EOF without having sent anything.
            assert await closed_by_server(clients[3])
            assert await closed_by_server(clients[4])
            assert len(held) == 3
            assert admission.statistics().refused == 2
            released.set()
            for client in clients[:3]:
                assert await closed_by_server(client)
            assert admission.statistics().in_flight == 0
            # Places are free again: a new connection reaches the handler.
            late = await trio.open_tcp_stream("127.0.0.1", port)
            await fourth.wait()
            assert admission.statistics().refused == 2
            for client in [*clients, late]:
                await client.aclose()
            nursery.cancel_scope.cancel()


async def test_the_listener_is_closed_when_serving_stops() -> None:
    """A node stopped and started again must find its port free."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def handler(stream: trio.SocketStream, ticket) -> None:
        ticket.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            serve_admitted, listeners[0], Admission(AdmissionLimits()), handler, nursery
        )
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    again = await trio.open_tcp_listeners(port, host="127.0.0.1")
    for listener in again:
        await listener.aclose()
