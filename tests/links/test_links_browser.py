"""A share link in the real browser (Debian's Chromium, as tests/web): open the link,
enter the password, download a file and the folder's zip. The browser trusts the
listener's self-signed certificate by its public key only (SPKI pinning)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from linkhelpers import Daemon, ok

from p2psync.links.tls import load_certificate

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)


def test_open_a_password_link_and_download(tmp_path, playwright_session):
    daemon = Daemon(tmp_path)
    try:
        (daemon.data / "contract.txt").write_text("signed by both parties")
        (daemon.data / "annex").mkdir()
        (daemon.data / "annex" / "terms.txt").write_text("terms")
        out = ok(daemon.home, "link", "create", "docs", "--password", input="open sesame\n" * 2)
        url = next(line.strip() for line in out.splitlines() if line.strip().startswith("https"))
        cert = load_certificate(daemon.cert, daemon.home / "links-tls" / "key.pem")
        args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={cert.spki_sha256}"]
        # launched from the session's Playwright (tests/conftest.py)
        browser = playwright_session.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            context = browser.new_context(accept_downloads=True)
            context.set_default_timeout(30_000)
            page = context.new_page()
            page.goto(url)
            assert "password" in page.title().lower()
            page.get_by_label("Password").fill("wrong")
            page.get_by_role("button", name="Open").click()
            page.get_by_role("alert").wait_for()
            assert "Wrong password" in page.get_by_role("alert").inner_text()
            page.get_by_label("Password").fill("open sesame")
            page.get_by_role("button", name="Open").click()
            page.get_by_role("link", name="contract.txt").wait_for()
            with page.expect_download() as info:
                page.get_by_role("link", name="contract.txt").click()
            download = info.value
            assert download.suggested_filename == "contract.txt"
            assert Path(download.path()).read_text() == "signed by both parties"
            with page.expect_download() as info:
                page.get_by_role("link", name="Download all as .zip").click()
            with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as z:
                assert z.read("contract.txt") == b"signed by both parties"
                assert z.read("annex/terms.txt") == b"terms"
            page.get_by_role("link", name="annex/").click()
            page.get_by_role("link", name="terms.txt").wait_for()
            context.close()
        finally:
            browser.close()
    finally:
        daemon.stop()
