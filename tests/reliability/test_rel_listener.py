"""Strangers attack a daemon's real sync listener (issue 17.1/17.2): clients without a
certificate, with RSA or expired certificates, with another ALPN or none, TLS 1.2 only, closing at every step of the handshake,
sending garbage before or after it, dribbling it, or holding hundreds of idle
connections. The daemon must close each of them with one log line saying why, keep
running, keep accepting, and still sync a file with its trusted peer.

The daemon here runs in the test's own trio loop (tests/integration/nodes.py): if a
connection's error escaped, the test would fail with it. The file-handle flood against a
daemon process with a lowered RLIMIT_NOFILE is in test_rel_listener_fds.py.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import trio
from hostile_tls import (
    RawTLSClient,
    client_context,
    open_tcp,
    p2psync_credentials,
    self_signed,
    stranger_hello,
    with_x509_version,
)
from nodes import Cluster, running_cluster, wait_for
from OpenSSL import SSL
from topo import NO_DIAL, link, listen_of, start_unlinked

from bench import st
from bench.procstats import syncthing_version
from p2psync.config import DeviceConfig
from p2psync.identity import generate_identity
from p2psync.net.admission import DEFAULT_DEADLINE
from p2psync.net.tls import ALPN_PROTOCOL, tls_connect
from p2psync.protocol.codec import HELLO_HEADER
from p2psync.protocol.connection import NEED_DATA, Connection
from p2psync.protocol.messages import Hello

Address = tuple[str, int]
ROUNDS = 2  # each attack twice: the second meets a daemon that handled the first


def our_context(**kw: object) -> SSL.Context:
    """A client context with a valid p2psync identity (unknown to the daemon)."""
    return client_context(p2psync_credentials(generate_identity()), **kw)  # type: ignore[arg-type]


# ---- the attacks: each returns the local ports it used, to find the daemon's log line ----


async def handshake_then_hello(address: Address, context: SSL.Context) -> list[int]:
    """Full TLS handshake with ``context``, send a Hello, wait for the daemon to close."""
    client = await RawTLSClient.connect(address, context)
    try:
        await client.handshake()
        if not client.closed_by_server:
            await client.send_raw(client.encrypt(stranger_hello()))
        assert await client.wait_closed_by_server(DEFAULT_DEADLINE + 5)
    finally:
        await client.close()
    return [client.local_port]


def with_context(make: Callable[[], SSL.Context]) -> Callable[[Address], Awaitable[list[int]]]:
    async def attack(address: Address) -> list[int]:
        return await handshake_then_hello(address, make())

    return attack


STEPS = [
    "connected",
    "half-client-hello",
    "client-hello",
    "server-flight-read",
    "half-client-finished",
    "tls-done",
    "half-hello",
    "hello",
]


def close_at(step: str, *, reset: bool) -> Callable[[Address], Awaitable[list[int]]]:
    """Go through the handshake up to ``step``, then close (FIN, or RST with ``reset``)."""

    async def attack(address: Address) -> list[int]:
        client = await RawTLSClient.connect(address, our_context(alpn=[ALPN_PROTOCOL]))
        try:
            await _advance_to(client, step)
        finally:
            await client.close(reset=reset)
        return [client.local_port]

    return attack


async def _advance_to(client: RawTLSClient, step: str) -> None:
    if step == "connected":
        return
    hello = client.client_hello()
    if step == "half-client-hello":
        await client.send_raw(hello[: len(hello) // 2])
        return
    await client.send_raw(hello)
    if step == "client-hello":
        return
    answer = await client.read_server_flight()
    assert answer, "the daemon closed during a valid handshake"
    if step == "server-flight-read":
        return
    if step == "half-client-finished":
        await client.send_raw(answer[: len(answer) // 2])
        return
    await client.send_raw(answer)
    if step == "tls-done":
        return
    frame = client.encrypt(stranger_hello())
    await client.send_raw(frame[: len(frame) // 2] if step == "half-hello" else frame)


def garbage_instead_of_tls(data: bytes) -> Callable[[Address], Awaitable[list[int]]]:
    async def attack(address: Address) -> list[int]:
        tcp = await open_tcp(address)
        port = tcp.socket.getsockname()[1]
        try:
            await tcp.send_all(data)
            with trio.fail_after(DEFAULT_DEADLINE + 5):
                while await _receive_or_empty(tcp):
                    pass
        finally:
            await tcp.aclose()
        return [port]

    return attack


def garbage_after_tls(*, encrypted: bool, after_hello: bool = False):
    """A good handshake, then random bytes: raw on the socket or inside TLS records."""

    async def attack(address: Address) -> list[int]:
        client = await RawTLSClient.connect(address, our_context(alpn=[ALPN_PROTOCOL]))
        try:
            await client.handshake()
            junk = os.urandom(4096)
            prefix = stranger_hello() if after_hello else b""
            await client.send_raw(client.encrypt(prefix + junk) if encrypted else junk)
            assert await client.wait_closed_by_server(DEFAULT_DEADLINE + 5)
        finally:
            await client.close()
        return [client.local_port]

    return attack


async def huge_hello_header(address: Address) -> list[int]:
    """Our magic, then the largest Hello length the header can say, then nothing."""
    client = await RawTLSClient.connect(address, our_context(alpn=[ALPN_PROTOCOL]))
    try:
        await client.handshake()
        magic = stranger_hello()[:4]
        await client.send_raw(client.encrypt(magic + HELLO_HEADER.pack(0, 0xFFFF)[4:]))
        assert await client.wait_closed_by_server(DEFAULT_DEADLINE + 5)
    finally:
        await client.close()
    return [client.local_port]


async def syncthing_hello(address: Address) -> list[int]:
    """What a Syncthing that got past ALPN would send: its BEP Hello magic."""
    client = await RawTLSClient.connect(address, our_context(alpn=[ALPN_PROTOCOL]))
    try:
        await client.handshake()
        await client.send_raw(client.encrypt(b"\x2e\xa7\xd9\x0b\x00\x10" + bytes(16)))
        assert await client.wait_closed_by_server(DEFAULT_DEADLINE + 5)
    finally:
        await client.close()
    return [client.local_port]


async def dribbled_handshake(address: Address) -> list[int]:
    """Slowloris: the TLS handshake spread over most of the deadline, then a Hello a byte
    at a time. The daemon must close it at its deadline, not after each step's timeout."""
    client = await RawTLSClient.connect(address, our_context(alpn=[ALPN_PROTOCOL]))
    started = trio.current_time()
    try:
        hello = client.client_hello()
        for i in range(0, len(hello), len(hello) // 8 + 1):
            await client.send_raw(hello[i : i + len(hello) // 8 + 1])
            await trio.sleep(DEFAULT_DEADLINE * 0.6 / 8)
        answer = await client.read_server_flight()
        await client.send_raw(answer)
        frame = client.encrypt(stranger_hello())

        async def dribble() -> None:
            for byte in frame:
                await client.send_raw(bytes([byte]))
                await trio.sleep(0.5)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(dribble)
            closed = await client.wait_closed_by_server(DEFAULT_DEADLINE * 3)
            nursery.cancel_scope.cancel()
        assert closed
        took = trio.current_time() - started
        assert took < DEFAULT_DEADLINE + 3, f"held for {took:.1f} s past the handshake deadline"
    finally:
        await client.close()
    return [client.local_port]


async def _receive_or_empty(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:
        return b""


@dataclass(frozen=True)
class Case:
    attack: Callable[[Address], Awaitable[list[int]]]
    outcome: str  # for docs/reliability.md
    reason: str = ""  # a word the daemon's log line must contain ("" = any)


CASES: dict[str, Case] = {
    "no-certificate": Case(
        with_context(lambda: client_context(None, alpn=[ALPN_PROTOCOL])),
        "TLS refused, one log line",
        "certificate",
    ),
    "rsa-certificate": Case(
        with_context(lambda: client_context(self_signed(rsa_key=True), alpn=[ALPN_PROTOCOL])),
        "recorded as pending, closed",
        "pending",
    ),
    "expired-certificate": Case(
        with_context(lambda: client_context(self_signed(expired=True), alpn=[ALPN_PROTOCOL])),
        "recorded as pending, closed",
        "pending",
    ),
    "certificate-version-4": Case(
        with_context(
            lambda: client_context(with_x509_version(self_signed(), 3), alpn=[ALPN_PROTOCOL])
        ),
        "refused (malformed certificate), one log line",
        "malformed",
    ),
    "alpn-unknown": Case(
        with_context(lambda: our_context(alpn=[b"bep/2.0"])),
        "closed, log names the offered ALPN",
        "'bep/2.0'",
    ),
    "alpn-none": Case(
        with_context(lambda: our_context()), "closed, log says no ALPN", "no ALPN protocol"
    ),
    "alpn-junk": Case(
        with_context(lambda: our_context(alpn=[b"\xff" * 255, b"h2", b"p2psync/2"])),
        "closed, offered names shortened in the log",
        "'h2'",
    ),
    "tls12-only": Case(
        with_context(lambda: our_context(alpn=[ALPN_PROTOCOL], max_version=SSL.TLS1_2_VERSION)),
        "TLS refused, one log line",
        "unsupported protocol",
    ),
    **{
        f"close-{'rst' if reset else 'fin'}-at-{step}": Case(
            close_at(step, reset=reset), "closed, one log line"
        )
        for step in STEPS
        for reset in (False, True)
    },
    "garbage-instead-of-tls": Case(
        garbage_instead_of_tls(os.urandom(4096)), "TLS refused, one log line"
    ),
    "http-request": Case(
        garbage_instead_of_tls(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "TLS refused, one log line"
    ),
    "raw-garbage-after-tls": Case(
        garbage_after_tls(encrypted=False), "closed, one log line", "Hello exchange"
    ),
    "tls-garbage-instead-of-hello": Case(
        garbage_after_tls(encrypted=True), "closed, one log line", "Hello exchange"
    ),
    "tls-garbage-after-hello": Case(
        garbage_after_tls(encrypted=True, after_hello=True), "recorded as pending, closed"
    ),
    "huge-hello-header": Case(huge_hello_header, "closed, one log line", "exceeds"),
    "syncthing-hello": Case(
        syncthing_hello, "closed, log says it speaks Syncthing's BEP", "Syncthing's BEP"
    ),
    "dribbled-handshake": Case(
        dribbled_handshake, f"closed at the {DEFAULT_DEADLINE:g} s handshake deadline"
    ),
}


def daemon_lines(caplog: pytest.LogCaptureFixture, port: int) -> list[logging.LogRecord]:
    """The daemon's log records about the connection from local ``port``."""
    marker = f":{port}"
    return [r for r in caplog.records if r.name.startswith("p2psync") and marker in r.getMessage()]


async def still_serves_strangers(address: Address) -> None:
    """A well-formed stranger still gets through TLS and receives the daemon's Hello."""
    with trio.fail_after(20):
        tcp = await trio.open_tcp_stream(*address)
        tls = await tls_connect(tcp, generate_identity())
        conn = Connection(
            Hello(device_name="late", client_name="p2psync", client_version="x", timestamp=1)
        )
        await tls.send_all(conn.start())
        while True:
            event = conn.next_event()
            if isinstance(event, Hello):
                break
            assert event is NEED_DATA, f"expected the daemon's Hello, got {event!r}"
            data = await tls.receive_some()
            assert data, "the daemon closed before its Hello"
            conn.receive_data(data)
        await trio.aclose_forcefully(tls)


async def still_syncs(cluster: Cluster, name: str) -> None:
    body = os.urandom(5000)
    (cluster.data("a") / name).write_bytes(body)
    cluster.scan("a")
    await wait_for(
        lambda: (
            (cluster.data("b") / name).exists() and (cluster.data("b") / name).read_bytes() == body
        ),
        timeout=30,
        what=f"{name} synced to the trusted peer",
    )


@pytest.mark.parametrize("case_id", list(CASES))
async def test_hostile_client_leaves_the_daemon_running(
    tmp_path, caplog, outcomes, case_id: str
) -> None:
    case = CASES[case_id]
    caplog.set_level(logging.INFO, logger="p2psync")
    async with running_cluster(tmp_path, ["a", "b"]) as cluster:
        await wait_for(
            lambda: cluster.connected("a", "b") and cluster.connected("b", "a"),
            what="a and b connected",
        )
        address = listen_of(cluster, "a")
        lines: list[str] = []
        for _ in range(ROUNDS):
            for port in await case.attack(address):
                records = await wait_for(
                    lambda p=port: daemon_lines(caplog, p),
                    timeout=DEFAULT_DEADLINE + 10,
                    what=f"the daemon's log line about the connection from port {port}",
                )
                assert isinstance(records, list)
                lines += [r.getMessage() for r in records]
                for r in records:
                    assert r.exc_info is None, f"a traceback for a hostile client: {r.getMessage()}"
                    assert r.levelno < logging.ERROR, r.getMessage()
                assert any(case.reason in r.getMessage() for r in records), (
                    f"no reason {case.reason!r} in {[r.getMessage() for r in records]}"
                )
        await still_serves_strangers(address)
        await still_syncs(cluster, f"after-{case_id}.txt")
        assert cluster.connected("a", "b")
    outcomes.record(
        "listener",
        f"stranger: {case_id}",
        case.outcome + "; daemon kept running and syncing",
        trials=ROUNDS,
        detail=lines[-1][:160] if lines else "",
    )


async def test_idle_connection_flood_is_capped(tmp_path, caplog, outcomes) -> None:
    """600 idle connections, half from one address and half from 30 others: those over
    the per-address and global caps are closed at once, the rest at the deadline, and the
    daemon syncs with its trusted peer throughout."""
    caplog.set_level(logging.INFO, logger="p2psync")
    sources = ["127.0.0.1"] * 300 + [f"127.0.1.{i}" for i in range(1, 31) for _ in range(10)]
    async with running_cluster(tmp_path, ["a", "b"]) as cluster:
        await wait_for(
            lambda: cluster.connected("a", "b") and cluster.connected("b", "a"),
            what="a and b connected",
        )
        address = listen_of(cluster, "a")
        admission = cluster.nodes["a"].connections.admission
        flood = [await open_tcp(address, source=source) for source in sources]
        closed_at_once: list[trio.SocketStream] = []

        async def watch(stream: trio.SocketStream) -> None:
            with trio.move_on_after(3):  # well inside the deadline
                while await _receive_or_empty(stream):
                    pass
                closed_at_once.append(stream)

        async with trio.open_nursery() as nursery:
            for stream in flood:
                nursery.start_soon(watch, stream)
        limits = admission.limits
        assert len(closed_at_once) >= len(flood) - limits.total, (
            f"only {len(closed_at_once)} of {len(flood)} closed at once"
        )
        assert 0 < admission.statistics().in_flight <= limits.total
        assert any("over the cap" in r.getMessage() for r in caplog.records)
        await still_syncs(cluster, "during-flood.txt")
        await wait_for(
            lambda: admission.statistics().in_flight == 0,
            timeout=DEFAULT_DEADLINE + 10,
            what="idle connections closed at the deadline",
        )
        for stream in flood:
            await stream.aclose()
        await still_serves_strangers(address)
    outcomes.record(
        "listener",
        f"{len(flood)} idle TCP connections (300 from one address, 300 from 30)",
        f"{len(closed_at_once)} closed at once (caps {limits.total} in all, "
        f"{limits.per_address} per address), the rest at the {limits.deadline:g} s "
        "deadline; synced throughout",
    )


async def test_dialling_a_tls_server_without_our_alpn_leaves_the_daemon_running(
    tmp_path, caplog, outcomes
) -> None:
    """The other direction: a configured (or discovered) address answers with a TLS
    server that negotiates no ALPN (any web server, say). The dial fails; nothing else."""
    caplog.set_level(logging.DEBUG, logger="p2psync.net")
    server_ctx = client_context(self_signed())  # a server role works with the same settings
    accepted = 0

    async def tls_server(tcp: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        conn = SSL.Connection(server_ctx, None)
        conn.set_accept_state()
        try:
            while True:
                data = await tcp.receive_some(65536)
                if not data:
                    return
                conn.bio_write(data)
                try:
                    conn.do_handshake()
                except SSL.WantReadError:
                    pass
                out = b""
                while True:
                    try:
                        out += conn.bio_read(65536)
                    except SSL.WantReadError:
                        break
                if out:
                    await tcp.send_all(out)
        except (SSL.Error, trio.BrokenResourceError):
            return
        finally:
            await tcp.aclose()

    async with trio.open_nursery() as servers:
        listeners = await servers.start(
            functools.partial(trio.serve_tcp, tls_server, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        async with running_cluster(tmp_path, ["a", "b"]) as cluster:
            await wait_for(lambda: cluster.connected("a", "b"), what="a and b connected")
            node = cluster.nodes["a"]
            stranger = generate_identity().device_id
            await node.apply_config(
                node.config.with_device(
                    DeviceConfig(id=stranger, name="web", addresses=(f"tcp://127.0.0.1:{port}",))
                )
            )
            node.connections.wake_dialer()
            await wait_for(
                lambda: any("ALPN" in r.getMessage() for r in caplog.records),
                what="the failed dial logged",
            )
            await still_syncs(cluster, "after-dial.txt")
        servers.cancel_scope.cancel()
    assert accepted >= 1
    outcomes.record(
        "listener",
        "dial a TLS server that negotiates no ALPN",
        "dial failed with a log line; daemon kept running and syncing",
    )


@pytest.mark.skipif(not st.available(), reason="syncthing is not installed")
async def test_stock_syncthing_dialling_in(tmp_path, caplog, outcomes) -> None:
    """A real Syncthing told that our daemon is one of its devices dials in offering
    ALPN bep/1.0 (and keeps redialling). Issue 17.1 as reported: it stopped the daemon.
    Now the daemon speaks BEP (issue 20): the unknown Syncthing is recorded as a pending
    device under its name, nothing else, and the daemon keeps syncing."""
    caplog.set_level(logging.INFO, logger="p2psync")
    async with running_cluster(tmp_path, ["a", "b"]) as cluster:
        await wait_for(lambda: cluster.connected("a", "b"), what="a and b connected")
        node = cluster.nodes["a"]
        syncthing = st._STNode(tmp_path, "syncthing")
        await trio.to_thread.run_sync(syncthing.generate)
        await trio.to_thread.run_sync(syncthing.start)
        try:
            await trio.to_thread.run_sync(
                functools.partial(
                    syncthing.rest,
                    "POST",
                    "/rest/config/devices",
                    {
                        "deviceID": str(node.device_id),
                        "name": "p2psync",
                        "addresses": list(node.connections.listen_addresses),
                    },
                )
            )
            pending = await wait_for(
                lambda: [d for d in node.pending.devices() if d.device_id == syncthing.device_id],
                timeout=90,
                what="the unknown Syncthing listed as a pending device",
            )
            await still_syncs(cluster, "after-syncthing.txt")
        finally:
            assert syncthing.daemon is not None
            await trio.to_thread.run_sync(syncthing.daemon.stop)
    assert isinstance(pending, list) and pending[0].name  # the name from its Hello
    outcomes.record(
        "listener",
        f"stock Syncthing {syncthing_version()} dials in (ALPN bep/1.0), not yet trusted",
        "listed as a pending device under its name; daemon kept running and syncing",
        detail=f"pending: {pending[0].name} {pending[0].device_id[:7]}",
    )


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
async def test_a_bug_in_a_connection_task_ends_only_that_connection(
    tmp_path, caplog, outcomes, direction: str
) -> None:
    """Fault injection: the sync model of a fails with an unexpected error on its first
    four trusted connections (b dials a, or a dials b). Each ends that connection with an
    error line (a traceback at most once a minute); the next connection works."""
    caplog.set_level(logging.INFO, logger="p2psync")
    cluster = Cluster(tmp_path, ["a", "b"])
    failures = 4
    async with trio.open_nursery() as nursery:
        await start_unlinked(cluster, nursery)
        connections = cluster.nodes["a"].connections
        real_serve_peer = connections.serve_peer

        async def buggy_serve_peer(peer) -> None:
            nonlocal failures
            if failures > 0:
                failures -= 1
                raise RuntimeError("injected bug")
            await real_serve_peer(peer)

        connections.serve_peer = buggy_serve_peer
        silent = ("a", "b") if direction == "incoming" else ("b", "a")  # who never dials
        await link(cluster, {silent: NO_DIAL})
        await wait_for(
            lambda: cluster.connected("a", "b") and cluster.connected("b", "a"),
            timeout=60,
            what="a and b connected once the bug stops",
        )
        await still_syncs(cluster, "after-bug.txt")
        nursery.cancel_scope.cancel()
    errors = [r for r in caplog.records if "injected bug" in r.getMessage()]
    assert failures == 0 and len(errors) == 4, [r.getMessage() for r in errors]
    assert sum(r.exc_info is not None for r in errors) == 1, "one traceback, then one line each"
    outcomes.record(
        "listener",
        f"unexpected error in a trusted {direction} connection's task, 4 times",
        "that connection closed with one error line (one traceback); next one synced",
        trials=4,
        detail=errors[-1].getMessage()[:160],
    )
