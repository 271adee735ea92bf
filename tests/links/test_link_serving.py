"""The link listener in-process (real TLS sockets, real files, real SQLite), with an
injected clock: what a link serves, what it refuses, and how it counts and records."""

from __future__ import annotations

import io
import os
import socket
import zipfile
from pathlib import Path

import httpx
import pytest
import trio
from linkhelpers import FakeClock, Roots, pinned, raw_get

from p2psync.errors import NotFoundError, UnsafePathError, UsageError
from p2psync.links.service import LinkManager, exposure_warning, link_url
from p2psync.links.store import STORE_FILE, Link, LinkStore


class Env:
    def __init__(self, tmp_path: Path, nursery: trio.Nursery) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.docs = tmp_path / "docs"
        self.docs.mkdir()
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text("top secret")
        self.clock = FakeClock()
        self.manager = LinkManager(self.home, Roots({"docs": self.docs}), nursery, clock=self.clock)

    @property
    def cert(self) -> Path:
        return self.home / "links-tls" / "cert.pem"

    async def create(self, path: str = "", **kw) -> dict:
        return await self.manager.create(folder="docs", path=path, **kw)

    async def get(self, url: str, **kw) -> httpx.Response:
        def fetch() -> httpx.Response:
            with pinned(self.cert, **{k: v for k, v in kw.items() if k == "transport"}) as c:
                return c.get(url, **{k: v for k, v in kw.items() if k != "transport"})

        return await trio.to_thread.run_sync(fetch)

    async def raw(self, url: str, raw_path: bytes) -> tuple[int, bytes]:
        return await trio.to_thread.run_sync(raw_get, url, self.cert, raw_path)

    async def downloads(self, link_id: str) -> list:
        return await trio.to_thread.run_sync(LinkStore(self.home).downloads, link_id)


@pytest.fixture
async def env(tmp_path, nursery) -> Env:
    e = Env(tmp_path, nursery)
    (e.docs / "a.txt").write_text("alpha")
    (e.docs / "sub").mkdir()
    (e.docs / "sub" / "b.txt").write_text("beta")
    return e


def _token(link: dict) -> bytes:
    return f"/s/{link['token']}".encode()


async def test_listener_is_off_until_the_first_link(env):
    await env.manager.start_if_needed()
    assert env.manager.listener is None
    assert not env.cert.exists()
    link = await env.create("a.txt")
    assert env.manager.listener is not None
    assert link["url"].startswith("https://127.0.0.1:")
    r = await env.get(link["url"])
    assert r.status_code == 200 and r.text == "alpha"
    assert r.headers["content-disposition"].startswith("attachment")


async def test_store_is_private_and_keeps_no_password(env):
    await env.create("a.txt", password="correct horse")
    store = env.home / STORE_FILE
    assert store.stat().st_mode & 0o777 == 0o600
    assert b"correct horse" not in store.read_bytes()
    assert (env.home / "links-tls" / "key.pem").stat().st_mode & 0o777 == 0o600


async def test_folder_listing_and_zip_match_the_disk(env):
    (env.docs / "sub" / "deep").mkdir()
    (env.docs / "sub" / "deep" / "c.bin").write_bytes(os.urandom(300_000))
    link = await env.create()
    listing = await env.get(link["url"])
    assert listing.status_code == 200
    assert "a.txt" in listing.text and "sub/" in listing.text
    sub = await env.get(link["url"] + "sub/")
    assert "b.txt" in sub.text and "deep/" in sub.text
    r = await env.get(link["url"] + "?zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        files = {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
    assert files == {
        "a.txt": b"alpha",
        "sub/b.txt": b"beta",
        "sub/deep/c.bin": (env.docs / "sub" / "deep" / "c.bin").read_bytes(),
    }
    r = await env.get(link["url"] + "sub/?zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert sorted(n for n in z.namelist() if not n.endswith("/")) == [
            "b.txt",
            "deep/c.bin",
        ]
    log = await env.downloads(link["id"])
    assert [(d.what, d.outcome, d.address) for d in log] == [
        ("sub/ (zip)", "complete", "127.0.0.1"),
        ("/ (zip)", "complete", "127.0.0.1"),
    ]
    assert log[1].bytes == len(r.content) or log[1].bytes > 0


async def test_directory_without_slash_redirects(env):
    link = await env.create()
    r = await env.get(link["url"] + "sub")
    assert r.status_code == 301 and r.headers["location"].endswith("/sub/")


@pytest.mark.parametrize(
    "suffix",
    [
        b"/../outside/secret.txt",
        b"/%2e%2e/outside/secret.txt",
        b"/%2E%2E%2Foutside%2Fsecret.txt",
        b"/sub/../../outside/secret.txt",
        b"/sub/%2e%2e/%2e%2e/outside/secret.txt",
        b"//etc/passwd",
        b"/%2Fetc%2Fpasswd",
        b"/./a.txt",
        b"/a.txt%00.jpg",
        b"/sub%5c..%5c..%5coutside%5csecret.txt",
    ],
)
async def test_traversal_attempts_are_refused(env, suffix):
    link = await env.create()
    status, body = await env.raw(link["url"], _token(link) + suffix)
    assert status in (400, 404), (suffix, status)
    assert b"secret" not in body and b"root:" not in body


async def test_a_subdirectory_link_cannot_reach_its_parent(env):
    link = await env.create("sub")
    for suffix in (b"/../a.txt", b"/%2e%2e/a.txt", b"/..", b"/%2e%2e/"):
        status, body = await env.raw(link["url"], _token(link) + suffix)
        assert status == 404, suffix
        assert b"alpha" not in body
    r = await env.get(link["url"] + "?zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert [n for n in z.namelist() if not n.endswith("/")] == ["b.txt"]


async def test_symlinks_pointing_out_are_neither_listed_nor_served(env):
    link = await env.create()
    os.symlink(env.outside / "secret.txt", env.docs / "leak.txt")
    os.symlink(env.outside, env.docs / "leakdir")
    os.symlink(env.docs / "a.txt", env.docs / "inside-link.txt")
    listing = await env.get(link["url"])
    assert "leak" not in listing.text and "inside-link" not in listing.text
    for name in ("leak.txt", "leakdir/secret.txt", "leakdir/", "inside-link.txt"):
        r = await env.get(link["url"] + name)
        assert r.status_code == 404, name
        assert "top secret" not in r.text
    r = await env.get(link["url"] + "?zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert not [n for n in z.namelist() if "leak" in n or "inside-link" in n]
        assert b"top secret" not in b"".join(z.read(n) for n in z.namelist())


async def test_a_symlink_link_target_is_refused_at_creation(env):
    os.symlink(env.outside, env.docs / "out")
    with pytest.raises(UnsafePathError):
        await env.create("out")
    with pytest.raises(NotFoundError):
        await env.create("missing.txt")
    with pytest.raises(UnsafePathError):
        await env.create("../outside")


@pytest.mark.parametrize(
    "name",
    [
        ".p2psync/state",
        ".p2pversions/a~20250101-000000.txt",
        ".stversions/old.txt",
        "sub/.p2psync.b.txt.tmp",
        ".P2PVERSIONS/x.txt",
    ],
)
async def test_internal_names_are_never_served(env, name):
    link = await env.create()
    target = env.docs / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("internal")
    r = await env.get(link["url"] + name)
    assert r.status_code == 404
    listing = await env.get(link["url"] + (name.rpartition("/")[0] + "/" if "/" in name else ""))
    assert name.rpartition("/")[2] not in listing.text
    r = await env.get(link["url"] + "?zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert not any(
            n.lower().startswith((".p2p", ".st")) or ".p2psync." in n for n in z.namelist()
        )


async def test_names_ignored_after_the_link_was_made_are_refused(env):
    link = await env.create()
    (env.docs / "private").mkdir()
    (env.docs / "private" / "salary.txt").write_text("numbers")
    (env.docs / "notes.secret").write_text("hush")
    assert (await env.get(link["url"] + "private/salary.txt")).status_code == 200
    (env.docs / ".p2pignore").write_text("private\n*.secret\n")
    for name in ("private/salary.txt", "private/", "notes.secret", ".p2pignore"):
        assert (await env.get(link["url"] + name)).status_code == 404, name
    listing = await env.get(link["url"])
    assert "private" not in listing.text and "notes.secret" not in listing.text
    r = await env.get(link["url"] + "?zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert sorted(n for n in z.namelist() if not n.endswith("/")) == ["a.txt", "sub/b.txt"]


async def test_a_link_to_a_path_ignored_later_serves_nothing(env):
    link = await env.create("sub")
    (env.docs / ".p2pignore").write_text("sub\n")
    assert (await env.get(link["url"])).status_code == 404
    assert (await env.get(link["url"] + "b.txt")).status_code == 404


async def test_expiry_with_an_injected_clock(env):
    link = await env.create("a.txt", expires_in=7 * 86400)
    assert (await env.get(link["url"])).status_code == 200
    env.clock.advance(7 * 86400 - 1)
    assert (await env.get(link["url"])).status_code == 200
    env.clock.advance(1)
    r = await env.get(link["url"])
    assert r.status_code == 410 and "alpha" not in r.text
    views = (await env.manager.links())["links"]
    assert views[0]["state"] == "expired"


async def test_revoked_link_answers_410_everywhere(env):
    link = await env.create(password="pw")
    await env.manager.revoke(link["id"])
    for suffix in ("", "a.txt", "sub/b.txt", "?zip"):
        r = await env.get(link["url"] + suffix)
        assert r.status_code == 410, suffix
        assert "alpha" not in r.text and "beta" not in r.text

    def post() -> httpx.Response:
        with pinned(env.cert) as c:
            return c.post(link["url"], data={"password": "pw"})

    assert (await trio.to_thread.run_sync(post)).status_code == 410


async def test_max_downloads_counts_downloads_not_views(env):
    link = await env.create(max_downloads=2)
    assert (await env.get(link["url"])).status_code == 200  # listing: not a download

    def head() -> int:
        with pinned(env.cert) as c:
            return c.head(link["url"] + "a.txt").status_code

    assert await trio.to_thread.run_sync(head) == 200  # HEAD: not a download
    assert (await env.get(link["url"] + "a.txt")).text == "alpha"
    assert (await env.get(link["url"] + "?zip")).status_code == 200
    r = await env.get(link["url"] + "a.txt")
    assert r.status_code == 410 and "alpha" not in r.text
    assert (await env.get(link["url"])).status_code == 410
    log = await env.downloads(link["id"])
    assert len(log) == 2


async def test_max_downloads_holds_under_concurrent_downloads(env):
    link = await env.create("a.txt", max_downloads=3)
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await env.get(link["url"])).status_code)

    async with trio.open_nursery() as n:
        for _ in range(8):
            n.start_soon(one)
    assert sorted(statuses) == [200] * 3 + [410] * 5


async def _login(env, url: str, password: str, local: str = "127.0.0.1") -> httpx.Response:
    def post() -> httpx.Response:
        transport = httpx.HTTPTransport(
            verify=__import__("ssl").create_default_context(cafile=str(env.cert)),
            local_address=local,
        )
        with httpx.Client(transport=transport, trust_env=False, timeout=30) as c:
            return c.post(url, data={"password": password})

    return await trio.to_thread.run_sync(post)


async def test_password_right_and_wrong(env):
    link = await env.create(password="s3cret")
    form = await env.get(link["url"])
    assert form.status_code == 401 and "type=password" in form.text and "alpha" not in form.text
    assert (await env.get(link["url"] + "a.txt")).status_code == 401
    wrong = await _login(env, link["url"], "guess")
    assert wrong.status_code == 401 and "Wrong password" in wrong.text

    def session_flow() -> tuple[int, str, int]:
        with pinned(env.cert) as c:
            r = c.post(link["url"], data={"password": "s3cret"}, follow_redirects=True)
            listing = r.status_code, r.text
            return listing[0], listing[1], c.get(link["url"] + "a.txt").status_code

    status, text, file_status = await trio.to_thread.run_sync(session_flow)
    assert status == 200 and "a.txt" in text
    assert file_status == 200
    # the cookie of one link opens no other
    other = await env.create(password="s3cret")

    def cross() -> int:
        with pinned(env.cert) as c:
            c.post(link["url"], data={"password": "s3cret"})
            return c.get(other["url"]).status_code

    assert await trio.to_thread.run_sync(cross) == 401


async def test_wrong_passwords_are_rate_limited_per_address(env):
    link = await env.create(password="right")
    for _ in range(5):
        assert (await _login(env, link["url"], "wrong")).status_code == 401
    limited = await _login(env, link["url"], "wrong")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    # while limited, even the right password is not checked
    assert (await _login(env, link["url"], "right")).status_code == 429
    # another address is not held back by this one
    assert (await _login(env, link["url"], "right", local="127.0.0.2")).status_code == 303
    env.clock.advance(60)
    assert (await _login(env, link["url"], "right")).status_code == 303


async def test_concurrent_guesses_cannot_outrun_the_limit(env):
    link = await env.create(password="right")
    codes: list[int] = []

    async def guess(i: int) -> None:
        codes.append((await _login(env, link["url"], f"guess{i}")).status_code)

    async with trio.open_nursery() as n:
        for i in range(12):  # under the 16 connections one address may hold
            n.start_soon(guess, i)
    assert codes.count(401) == 5 and codes.count(429) == 7
    # a right password gives its token back: the address may still try
    env.clock.advance(60)
    assert (await _login(env, link["url"], "right")).status_code == 303
    assert (await _login(env, link["url"], "right")).status_code == 303


async def test_brute_force_from_many_addresses_is_limited_per_link(env):
    link = await env.create(password="right")
    codes = []
    for i in range(15):  # 3 tries each from 5 addresses: under the per-address limit
        codes.append(
            (await _login(env, link["url"], f"guess{i}", local=f"127.0.0.{2 + i // 3}")).status_code
        )
    assert codes[:10] == [401] * 10  # the link's burst
    assert set(codes[10:]) == {429}
    assert (await _login(env, link["url"], "right", local="127.0.0.20")).status_code == 429
    other = await env.create(password="right")  # other links are unaffected
    assert (await _login(env, other["url"], "right", local="127.0.0.20")).status_code == 303
    env.clock.advance(60)
    assert (await _login(env, link["url"], "right", local="127.0.0.20")).status_code == 303


def _stream_until_change(cert: Path, url: str, change) -> tuple[bytes, Exception | None]:
    """Read the first chunk, call ``change()``, read on; (bytes, error)."""
    got = bytearray()
    with pinned(cert) as c, c.stream("GET", url) as r:
        assert r.status_code == 200
        it = r.iter_raw(65536)
        try:
            got += next(it)
            change()
            for chunk in it:
                got += chunk
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            return bytes(got), exc
    return bytes(got), None


async def test_a_file_written_during_download_fails_the_download(env):
    big = env.docs / "big.bin"
    original = os.urandom(32 << 20)
    big.write_bytes(original)
    link = await env.create("big.bin")

    def change() -> None:
        with open(big, "r+b") as f:
            f.seek(20 << 20)
            f.write(b"X" * 4096)

    got, error = await trio.to_thread.run_sync(_stream_until_change, env.cert, link["url"], change)
    assert error is not None, "a download of a changing file must fail"
    assert len(got) < len(original)
    assert got == original[: len(got)]  # what came is a prefix of the old version, no mix
    log = await env.downloads(link["id"])
    assert log[0].outcome == "failed: the file changed while it was being sent"


async def test_a_file_replaced_during_download_is_sent_whole_in_its_old_version(env):
    big = env.docs / "big.bin"
    original = os.urandom(16 << 20)
    big.write_bytes(original)
    link = await env.create("big.bin")

    def replace() -> None:
        tmp = env.docs / "big.new"
        tmp.write_bytes(b"new" * 1000)
        os.replace(tmp, big)

    got, error = await trio.to_thread.run_sync(_stream_until_change, env.cert, link["url"], replace)
    assert error is None and got == original
    assert (await env.get(link["url"])).content == b"new" * 1000


async def test_a_file_written_during_a_zip_download_fails_the_zip(env):
    big = env.docs / "sub" / "big.bin"
    big.write_bytes(os.urandom(32 << 20))
    link = await env.create()

    def change() -> None:
        with open(big, "ab") as f:
            f.write(b"appended")

    got, error = await trio.to_thread.run_sync(
        _stream_until_change, env.cert, link["url"] + "?zip", change
    )
    assert error is not None
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(got))
    log = await env.downloads(link["id"])
    assert log[0].outcome.startswith("failed: the file changed")


async def test_unknown_token_is_404_and_other_methods_refused(env):
    link = await env.create()
    base = link["url"].split("/s/")[0]
    assert (await env.get(base + "/s/nope/")).status_code == 404
    assert (await env.get(base + "/")).status_code == 404

    def put() -> int:
        with pinned(env.cert) as c:
            return c.put(link["url"], content=b"x").status_code

    assert await trio.to_thread.run_sync(put) == 405
    assert sorted(p.name for p in env.docs.iterdir()) == ["a.txt", "sub"]


async def test_listener_restarts_on_the_remembered_port(env, nursery, tmp_path):
    link = await env.create("a.txt")
    address = env.manager.listener.address
    # a second manager on the same home (a restart) serves the same URL
    env.manager.listener.scope.cancel()
    await env.manager.listener.done.wait()
    again = LinkManager(env.home, Roots({"docs": env.docs}), nursery, clock=env.clock)
    await again.start_if_needed()
    assert again.listener is not None and again.listener.address == address
    assert (await env.get(link["url"])).text == "alpha"


def test_a_listener_reachable_from_other_machines_is_warned_about():
    # judged on the address only: the tests bind nothing beyond loopback
    for host in ("0.0.0.0", "::", "192.168.1.5", "fe80::1%eth0", "files.example.org"):
        warning = exposure_warning(host, f"{host}:8443")
        assert warning and "other machines" in warning, host
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert exposure_warning(host, f"{host}:8443") is None, host


def test_a_wildcard_listener_gives_urls_with_this_host_name():
    link = Link("i", "tok", "docs", "", 0.0, None, None, None, 0, None)
    assert link_url(link, None, "0.0.0.0:8443") == f"https://{socket.gethostname()}:8443/s/tok/"
    assert link_url(link, None, "[::]:8443") == f"https://{socket.gethostname()}:8443/s/tok/"
    assert link_url(link, "https://share.example", "0.0.0.0:8443") == "https://share.example/s/tok/"
    assert link_url(link, None, "127.0.0.1:8443") == "https://127.0.0.1:8443/s/tok/"


async def test_revoking_stops_a_download_under_way(env):
    big = env.docs / "big.bin"
    original = os.urandom(32 << 20)
    big.write_bytes(original)
    link = await env.create("big.bin")

    def revoke() -> None:
        trio.from_thread.run(env.manager.revoke, link["id"])

    got, error = await trio.to_thread.run_sync(_stream_until_change, env.cert, link["url"], revoke)
    assert error is not None and len(got) < len(original)
    assert got == original[: len(got)]
    log = await env.downloads(link["id"])
    assert log[0].outcome == "failed: the link was revoked"


async def test_a_port_in_use_stores_no_link(env):
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match="cannot listen for share links"):
            await env.create("a.txt", listen=f"127.0.0.1:{port}")
    assert await trio.to_thread.run_sync(LinkStore(env.home).links) == []
    assert env.manager.listener is None


async def test_an_unusable_link_store_leaves_the_node_running(env):
    (env.home / STORE_FILE).write_bytes(b"this is not a database" * 100)
    await env.manager.start_if_needed()
    assert env.manager.listener is None
    assert "unusable" in env.manager.error


async def test_urls_are_shown_while_the_listener_is_off(env, nursery):
    link = await env.create("a.txt")
    await env.manager.revoke(link["id"])
    env.manager.listener.scope.cancel()
    await env.manager.listener.done.wait()
    again = LinkManager(env.home, Roots({"docs": env.docs}), nursery, clock=env.clock)
    await again.start_if_needed()
    assert again.listener is None  # no active link: nothing bound
    view = await again.links()
    assert view["listener"]["running"] is False
    assert view["links"][0]["url"] == link["url"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_rebinding_to_the_same_port_on_another_host(env):
    port = _free_port()
    first = await env.create("a.txt", listen=f"127.0.0.1:{port}")
    # "localhost" includes 127.0.0.1:port, held by the running listener itself
    await env.create("a.txt", listen=f"localhost:{port}")
    assert env.manager.listener.address.endswith(f":{port}")
    assert (await env.get(first["url"])).text == "alpha"


async def test_a_failed_rebind_keeps_the_old_listener(env):
    first = await env.create("a.txt")
    old = env.manager.listener.address
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match="cannot listen for share links"):
            await env.create("a.txt", listen=f"127.0.0.1:{port}")
    assert env.manager.listener.address == old
    assert (await env.get(first["url"])).text == "alpha"
    assert len(await trio.to_thread.run_sync(LinkStore(env.home).links)) == 1
