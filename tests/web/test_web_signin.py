"""Issue 23: signing in to the web interface, and what is refused without a session."""

from __future__ import annotations

import re

import httpx
from click.testing import CliRunner
from playwright.sync_api import expect
from webhelpers import ok, sign_in

from p2psync.cli import cli


def test_sign_in_session_cookie_csrf_and_host_checks(start_daemon, context, tmp_path) -> None:
    alpha = start_daemon("alpha")
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))

    # no session: every page sends the browser to sign-in, and nothing else is shown
    page.goto(alpha.url + "/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
    expect(page.locator("#own-device-id")).to_have_count(0)

    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong API key or password.")
    assert context.cookies() == []

    sign_in(page, alpha)
    expect(page.locator("#own-device-id")).to_have_text(alpha.device_id)
    expect(page.locator("h2#h-system")).to_contain_text("alpha")
    expect(page.locator("#system svg.segno")).to_be_visible()  # the QR code
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # every control has a label (screen readers), and the CSP blocks nothing the page needs
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !(e.tagName === 'BUTTON' && e.textContent.trim()))
             .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    assert [e for e in console_errors if "Content Security Policy" in e] == []

    # the device ID is checked as it is typed, by the CLI's parser
    page.get_by_label("Device ID").fill("MFZWI3D-BONSGYC")
    expect(page.locator("#device-id-check")).to_contain_text("has 14 characters")
    page.get_by_label("Device ID").fill(alpha.device_id)
    expect(page.locator("#device-id-check")).to_contain_text("this device's own ID")

    # a bad ID and a bad folder path are refused where they were typed, not with a trace
    page.get_by_label("Device ID").fill("NOT-AN-ID")
    page.get_by_role("button", name="Add device").click()
    expect(page.locator("#add-device-result .error")).to_contain_text("device ID 'NOT-AN-ID'")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    page.get_by_label("Path on this device").fill(str(blocker / "sub"))
    page.get_by_role("button", name="Add folder").click()
    expect(page.locator("#add-folder-result .error")).to_contain_text("cannot create")
    expect(page.locator("#folders")).to_contain_text("No folders yet.")

    # a POST with the session cookie but without the CSRF token is refused ...
    forged = page.request.post(alpha.url + "/ui/devices", form={"id": "x"})
    assert forged.status == 403 and "CSRF" in forged.text()
    # ... and one from another origin even with the token
    csrf = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    other = page.request.post(
        alpha.url + "/ui/folders/x/pause",
        headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
    )
    assert other.status == 403 and "Cross-site" in other.text()
    # the same request from the page itself goes through (here: to a refusal in the form)
    same = page.request.post(alpha.url + "/ui/folders/x/pause", headers={"X-CSRF-Token": csrf})
    assert same.status == 422 and "does not exist" in same.text()

    # the session does not open the JSON API (that needs the key), and a foreign Host is refused
    assert page.request.get(alpha.url + "/api/system").status == 401
    with httpx.Client(trust_env=False) as http:
        rebound = http.get(alpha.url + "/signin", headers={"Host": "evil.example"})
        assert rebound.status_code == 403
        assert http.get(alpha.url + "/static/web.css").status_code == 200
        assert http.get(alpha.url + "/ui/live").status_code == 303  # to sign-in

    # signing out ends the session on the server, not only in the browser
    token = cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    with httpx.Client(trust_env=False) as http:
        replay = http.get(alpha.url + "/", headers={"Cookie": f"{cookie['name']}={token}"})
        assert replay.status_code == 303


def test_p2psync_open_gives_a_one_time_sign_in_link(start_daemon, context) -> None:
    alpha = start_daemon("alpha")
    out = ok(alpha.home, "open", "--no-browser")
    assert f"Web interface: {alpha.url}/" in out and "api.key" in out
    link = re.search(r"(http://\S+/signin\?ticket=\S+)", out).group(1)
    page = context.new_page()
    page.goto(link)
    expect(page.locator("#own-device-id")).to_have_text(alpha.device_id)
    second = context.browser.new_context().new_page()
    second.goto(link)
    expect(second.get_by_role("alert")).to_contain_text("used up or expired")
    second.context.close()

    # a password of the user's own, set on the CLI, signs in too (the key still does)
    r = CliRunner().invoke(
        cli, ["--home", str(alpha.home), "web-password"], input="correct horse\ncorrect horse\n"
    )
    assert r.exit_code == 0, r.output
    assert (alpha.home / "web.password").stat().st_mode & 0o777 == 0o600
    third = context.browser.new_context().new_page()
    third.goto(alpha.url + "/")
    third.get_by_label("API key or password").fill("correct horse")
    third.get_by_role("button", name="Sign in").click()
    expect(third.locator("#own-device-id")).to_have_text(alpha.device_id)
    third.context.close()

    # a daemon that stops is said so on the page, not shown as a frozen or blank page
    alpha.stop()
    expect(page.locator("#banner")).to_contain_text("not answering")
