"""Hostile requests to a running node's share links (issue 24.1), over real TLS: each
is refused, serves nothing from outside the link, and the node keeps serving."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import httpx
import trio
from nodes import FOLDER, running_cluster

from p2psync.links.tls import CERT_FILE, TLS_DIR


def _raw(address: str, cafile: Path, path: bytes) -> tuple[int, bytes]:
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = bytearray()
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_share_links_refuse_hostile_requests(tmp_path, outcomes) -> None:
    async with running_cluster(tmp_path, ["a"]) as c:
        node, data = c.nodes["a"], c.data("a")
        (data / "sub").mkdir()
        (data / "sub" / "ok.txt").write_text("shared")
        (tmp_path / "secret.txt").write_text("not shared")
        link = await node.links.create(folder=FOLDER, path="sub", password="pw")
        open_link = await node.links.create(folder=FOLDER, path="sub")
        address = node.links.listener.address
        cafile = c.homes["a"] / TLS_DIR / CERT_FILE
        token = f"/s/{open_link['token']}".encode()

        traversals = [
            b"/../../secret.txt",
            b"/%2e%2e/%2e%2e/secret.txt",
            b"/%2E%2E%2F%2E%2E%2Fsecret.txt",
            b"//etc/passwd",
            b"/ok.txt%00",
            b"/..%5c..%5csecret.txt",
        ]
        for path in traversals:
            status, body = await trio.to_thread.run_sync(_raw, address, cafile, token + path)
            assert status in (400, 404) and b"not shared" not in body and b"root:" not in body
        outcomes.record(
            "links",
            "path traversal (.., %2e%2e, %2F, //, NUL, backslash)",
            "refused (404), nothing outside served",
            trials=len(traversals),
        )

        os.symlink(tmp_path / "secret.txt", data / "sub" / "out.txt")
        (data / ".p2pversions").mkdir(exist_ok=True)
        (data / "sub" / ".p2psync.ok.txt.tmp").write_text("temp")
        (data / "sub" / "later.txt").write_text("ignored later")
        (data / ".p2pignore").write_text("sub/later.txt\n")
        for name, what in [
            (b"/out.txt", "symlink pointing out of the folder"),
            (b"/.p2psync.ok.txt.tmp", "p2psync temp file"),
            (b"/later.txt", "name ignored after the link was made"),
        ]:
            status, body = await trio.to_thread.run_sync(_raw, address, cafile, token + name)
            assert status == 404 and b"not shared" not in body and b"ignored later" not in body
            outcomes.record("links", what, "refused (404), left out of listings and zips")

        def guess() -> list[int]:
            ctx = ssl.create_default_context(cafile=str(cafile))
            with httpx.Client(verify=ctx, trust_env=False, timeout=30) as web:
                return [
                    web.post(link["url"], data={"password": f"guess{i}"}).status_code
                    for i in range(8)
                ]

        codes = await trio.to_thread.run_sync(guess)
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        outcomes.record(
            "links",
            "8 wrong link passwords from one address within a minute",
            "refused (401), then throttled (429)",
            trials=8,
        )

        big = data / "sub" / "big.bin"
        big.write_bytes(os.urandom(32 << 20))
        file_link = await node.links.create(folder=FOLDER, path="sub/big.bin")

        def download_while_writing() -> bool:
            ctx = ssl.create_default_context(cafile=str(cafile))
            with httpx.Client(verify=ctx, trust_env=False, timeout=30) as web:
                with web.stream("GET", file_link["url"]) as r:
                    it = r.iter_raw(65536)
                    next(it)
                    with open(big, "r+b") as f:
                        f.seek(16 << 20)
                        f.write(b"changed")
                    try:
                        for _ in it:
                            pass
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        return True
            return False

        assert await trio.to_thread.run_sync(download_while_writing)
        outcomes.record(
            "links",
            "file written while it is being downloaded",
            "download aborted (truncated), never a mix; logged as failed",
        )

        await node.links.revoke(open_link["id"])
        status, body = await trio.to_thread.run_sync(_raw, address, cafile, token + b"/ok.txt")
        assert status == 410 and b"shared" not in body
        outcomes.record("links", "revoked link", "410 Gone, nothing served")
        # the node still serves its other links
        status, _ = await trio.to_thread.run_sync(
            _raw, address, cafile, f"/s/{link['token']}/".encode()
        )
        assert status == 401  # the password form
