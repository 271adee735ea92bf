"""Issue 23: a device and its folder accepted purely in the browser; the page follows live."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from webhelpers import ok, sign_in, wait_for


def test_accept_device_and_folder_in_the_browser_then_live_updates(
    start_daemon, context, tmp_path
) -> None:
    alpha, beta = start_daemon("alpha"), start_daemon("beta")
    page = context.new_page()
    sign_in(page, alpha)
    page.evaluate("window.notReloaded = true")  # gone if anything reloads the page

    # on beta's pages (another browser profile): trust alpha, add a folder shared with it
    shared = tmp_path / "beta-docs"
    shared.mkdir()
    (shared / "first.txt").write_text("hello from beta\n")
    other = context.browser.new_context()
    bpage = other.new_page()
    sign_in(bpage, beta)
    bpage.get_by_label("Device ID").fill(alpha.device_id.lower())  # lenient, like the CLI
    expect(bpage.locator("#device-id-check")).to_contain_text(f"Valid: {alpha.device_id}")
    bpage.get_by_label("Name (optional)").fill("alpha")
    bpage.get_by_label("Address (optional)").fill(alpha.listen)
    bpage.get_by_role("button", name="Add device").click()
    expect(bpage.locator("#add-device-result")).to_contain_text("Added device")
    expect(bpage.get_by_label("Device ID")).to_have_value("")  # the form is reset
    bpage.get_by_label("Path on this device").fill(str(shared))
    bpage.get_by_label("Folder ID (optional: the same on every device)").fill("docs")
    bpage.get_by_role("checkbox", name="alpha").check()  # live: alpha was just added
    bpage.get_by_role("button", name="Add folder").click()
    expect(bpage.locator("#add-folder-result")).to_contain_text("Added folder 'docs'")
    other.close()

    # alpha's page shows beta asking to connect, without a reload; accept it there
    asking = page.locator(f'li.pending-device[data-device="{beta.device_id}"]')
    expect(asking).to_contain_text("beta")
    asking.get_by_role("button", name=re.compile("^Accept device")).click()
    expect(page.locator("#flash")).to_contain_text(f"Accepted device {beta.device_id}")
    device_row = page.locator(f'#devices tr[data-device="{beta.device_id}"]')
    expect(device_row.locator("td.conn")).to_have_text(re.compile("^connected"))
    expect(device_row).to_contain_text("p2psync/1")  # protocol, from the live device view

    # then beta's folder is offered; accept it at a path of our choosing
    offer = page.locator('li.pending-folder[data-folder="docs"]')
    target = tmp_path / "alpha-docs"
    offer.get_by_label("Put it at").fill(str(target))
    offer.get_by_role("button", name=re.compile("^Accept folder")).click()
    expect(page.locator("#flash")).to_contain_text(f"Accepted folder 'docs' at {target}")

    # the folder syncs, and the page shows it without being reloaded
    wait_for(lambda: (target / "first.txt").is_file(), what="first.txt on alpha")
    assert (target / "first.txt").read_text() == "hello from beta\n"
    folder = page.locator('article.folder[data-folder="docs"]')
    expect(folder.locator(".local-files")).to_contain_text("1 files")
    (shared / "second.txt").write_text("more\n")
    ok(beta.home, "scan", "docs")
    expect(folder.locator(".local-files")).to_contain_text("2 files")
    expect(folder.locator(".state")).to_have_text("idle")
    assert (target / "second.txt").read_text() == "more\n"
    assert page.evaluate("window.notReloaded") is True

    # pausing the device from its row disconnects it; resuming reconnects
    device_row.get_by_role("button", name="Pause beta").click()
    expect(device_row.locator("td.conn")).to_have_text(re.compile("^paused"))
    device_row.get_by_role("button", name="Resume beta").click()
    expect(device_row.locator("td.conn")).to_have_text(re.compile("^connected"))

    # the event log, filtered by type
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Show").select_option("DeviceConnected")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.events tbody tr")
    expect(rows.first).to_contain_text("beta")
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.type)")) == {"DeviceConnected"}
