"""Shared helpers for the discovery-server tests: a fake clock and an in-process server."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from discovery_server.server import serve_discovery
from discovery_server.service import DiscoveryService, ServerSettings
from discovery_server.stores import MemoryStore, Record, Store
from p2psync.identity import DeviceID

START = 1_700_000_000.0


class FakeClock:
    """Unix seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WatchedStore(MemoryStore):
    """A MemoryStore that wakes ``wait_until`` whenever it is read or written."""

    def __init__(self) -> None:
        super().__init__()
        self._used = trio.Event()

    def _poke(self) -> None:
        self._used.set()
        self._used = trio.Event()

    async def put(self, device: DeviceID, addresses: list[str], now: float, ttl: float) -> None:
        await super().put(device, addresses, now, ttl)
        self._poke()

    async def get(self, device: DeviceID, now: float) -> Record | None:
        record = await super().get(device, now)
        self._poke()
        return record

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(10):
            while not condition():
                await self._used.wait()


@dataclass
class RunningServer:
    url: str
    service: DiscoveryService
    http: httpx.AsyncClient
    clock: FakeClock

    def counter(self, line_prefix: str) -> float:
        """The value of the first /metrics line starting with ``line_prefix`` (0 if absent)."""
        text = self.service.metrics.render(devices=0)
        for line in text.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@asynccontextmanager
async def running_server(
    store: Store | None = None,
    *,
    clock: FakeClock | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    verify: object = True,
    **settings: object,
) -> AsyncIterator[RunningServer]:
    """A real server on 127.0.0.1:<free port> and an httpx client for it."""
    clock = clock or FakeClock()
    async with trio.open_nursery() as nursery:
        binds, service = await nursery.start(
            partial(
                serve_discovery,
                ServerSettings(**settings),  # type: ignore[arg-type]
                store if store is not None else MemoryStore(),
                listen="127.0.0.1:0",
                certfile=certfile,
                keyfile=keyfile,
                clock=clock,
            )
        )
        async with httpx.AsyncClient(base_url=binds[0], timeout=10, verify=verify) as http:  # type: ignore[arg-type]
            yield RunningServer(binds[0], service, http, clock)
        nursery.cancel_scope.cancel()


def write_tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server-cert.pem", directory / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
