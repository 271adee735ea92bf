"""Issue 24.1 in the browser: a share link created on the Share links page, fetched with
a real HTTPS client pinned to the listener's certificate, its download counted and
logged on the page, then revoked from the page (the URL answers 410); the gate refuses
the page's POSTs without the CSRF token."""

from __future__ import annotations

import re
import ssl

import httpx
from playwright.sync_api import expect
from webhelpers import ok, sign_in

# A download is no event: the page's live poll shows it at its next answer (within 5 s).
LIVE = 15_000


def pinned(cert) -> httpx.Client:
    """An HTTPS client that trusts only the link listener's own certificate."""
    context = ssl.create_default_context(cafile=str(cert))
    return httpx.Client(verify=context, trust_env=False, timeout=30.0)


def test_create_download_and_revoke_a_link_in_the_browser(start_daemon, context, tmp_path) -> None:
    alpha = start_daemon("alpha")
    docs = tmp_path / "docs"
    ok(alpha.home, "folder", "add", str(docs), "--id", "docs")
    (docs / "contract.txt").write_text("signed by both parties\n")

    page = context.new_page()
    sign_in(page, alpha)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Share links").click()
    expect(page).to_have_url(re.compile(r"/ui/links$"))
    expect(page.locator("#link_list .note")).to_contain_text("The link listener is off")
    expect(page.locator("#link_list")).to_contain_text("No links yet.")

    # bad input: a path that is not there is refused under the form, and nothing is made
    page.get_by_label("Path inside it").fill("missing.pdf")
    page.get_by_role("button", name="Create link").click()
    expect(page.locator("#create-result .error")).to_contain_text("'missing.pdf' does not exist")
    expect(page.locator("#link_list")).to_contain_text("No links yet.")

    page.get_by_label("Path inside it").fill("contract.txt")
    page.get_by_label("Expires").select_option("1d")
    page.get_by_label("Maximum downloads").fill("2")
    page.get_by_role("button", name="Create link").click()
    created = page.locator("#create-result")
    expect(created).to_contain_text("Created a link to docs/contract.txt")
    url = created.locator("code.new-url").inner_text()
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]+/", url), url
    fingerprint = created.locator("code.fingerprint").inner_text()
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint), fingerprint
    row = page.locator("table.links tbody tr").first
    expect(row).to_contain_text("docs/contract.txt")
    expect(row.locator("td.downloads")).to_have_text("0 / 2")
    expect(row.locator("code.url")).to_have_text(url)
    expect(page.locator("#link_list .note")).to_have_count(0)  # the listener runs now

    # a real HTTPS client, trusting only the listener's certificate, downloads the file
    with pinned(alpha.home / "links-tls" / "cert.pem") as https:
        got = https.get(url)
        assert got.status_code == 200 and got.text == "signed by both parties\n"
    expect(row.locator("td.downloads")).to_have_text("1 / 2", timeout=LIVE)  # no reload
    expect(row).to_contain_text("from 127.0.0.1", timeout=LIVE)

    # the link's own page: its download log
    link_id = row.get_attribute("data-link")
    row.get_by_role("link", name="docs/contract.txt").click()
    expect(page).to_have_url(re.compile(rf"/ui/links/{link_id}$"))
    log = page.locator("table.download-log tbody tr")
    expect(log).to_have_count(1)
    expect(log.first).to_contain_text("127.0.0.1")
    expect(log.first).to_contain_text("contract.txt")
    expect(log.first).to_contain_text("complete")

    # the gate: the page's POSTs need the session's CSRF token
    for path in ("/ui/links", f"/ui/links/{link_id}/revoke"):
        forged = page.request.post(alpha.url + path, form={"folder": "docs"})
        assert forged.status == 403 and "CSRF" in forged.text()
    with pinned(alpha.home / "links-tls" / "cert.pem") as https:
        assert https.head(url).status_code == 200  # still active

    # revoked from the page, after the browser's confirmation: the URL is gone (410)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#flash")).to_contain_text("Revoked the link to docs/contract.txt")
    expect(page.locator("#link_detail h1")).to_contain_text("revoked")
    with pinned(alpha.home / "links-tls" / "cert.pem") as https:
        assert https.get(url).status_code == 410
    page.goto(alpha.url + "/ui/links")
    expect(page.locator(f'tr[data-link="{link_id}"]')).to_have_attribute("data-state", "revoked")
    expect(page.locator(f'tr[data-link="{link_id}"]').get_by_role("button")).to_have_count(1)
