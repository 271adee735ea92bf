"""The load generator's HTTP/1.1 connections: a minimal keep-alive client on a raw
socket, and httpx for comparison."""

from __future__ import annotations

import httpx
import trio

from bench.errors import BenchError

Request = tuple[str, str, bytes | None]  # method, path, body
# The same plus extra header lines ("Name: value\r\n" each), for Syncthing's v3 announces.
HeadedRequest = tuple[str, str, bytes | None, bytes]


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client: one request at a time, Content-Length bodies.

    httpx spends ~1 ms of CPU per request, which on a 2-core machine makes the generator,
    not the server, the bottleneck for lookups; this costs a small fraction of that. Like
    any client it opens a new connection when the server ends one (the server does after
    1,000 requests, answering the last with ``Connection: close``), and sends a request
    again on a new connection when the server closed an idle one before answering
    (the server does after ``--header-timeout`` seconds).
    """

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._host_header = f"{host}:{port}".encode()
        self._stream: trio.SocketStream | None = None
        self._buffer = b""
        self._reused = False  # the stream has answered a request: it may have gone stale

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        connection = cls(host, port)
        await connection._connect()
        return connection

    async def _connect(self) -> None:
        self._stream = await trio.open_tcp_stream(*self._address)
        self._buffer = b""
        self._reused = False

    async def request(
        self, method: str, path: str, body: bytes | None, headers: bytes = b""
    ) -> int:
        """Send one request and read its whole response; returns the status code."""
        if self._stream is None:
            await self._connect()
        try:
            return await self._request(method, path, body, headers)
        except (_StaleConnection, trio.BrokenResourceError) as exc:
            if not self._reused:
                raise BenchError("the server closed a new connection without answering") from exc
            await self.aclose()
            await self._connect()
            return await self._request(method, path, body, headers)

    async def _request(self, method: str, path: str, body: bytes | None, headers: bytes) -> int:
        assert self._stream is not None
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method.encode(),
            path.encode(),
            self._host_header,
            headers,
        )
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        await self._stream.send_all(head + b"\r\n" + (body or b""))
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            data = await self._stream.receive_some(65536)
            if not data and not self._buffer:
                raise _StaleConnection
            self._buffer += data or await self._receive_some()  # (raises: closed mid-answer)
        lines = self._buffer[:end].split(b"\r\n")
        rest = self._buffer[end + 4 :]
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise BenchError("the server sent a chunked response; RawConnection cannot")
        while len(rest) < length:
            rest += await self._receive_some()
        self._buffer = rest[length:]
        self._reused = True
        if close:
            await self._stream.aclose()
            self._stream = None
        return status

    async def _receive_some(self) -> bytes:
        assert self._stream is not None
        data = await self._stream.receive_some(65536)
        if not data:
            raise BenchError("the server closed the connection in the middle of a request")
        return data

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None


class _StaleConnection(Exception):
    """The server closed a kept-alive connection before it read our request."""


class HttpxConnection:
    """The same interface over a shared httpx.AsyncClient (``--client httpx``)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self, method: str, path: str, body: bytes | None, headers: bytes = b""
    ) -> int:
        fields = dict(line.split(": ", 1) for line in headers.decode().split("\r\n") if line)
        if body is not None:
            fields["content-type"] = "application/json"
        response = await self._client.request(method, path, content=body, headers=fields)
        return response.status_code

    async def aclose(self) -> None:
        pass


Connection = RawConnection | HttpxConnection
