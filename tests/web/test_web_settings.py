"""Issue 23: a folder's settings changed in the page, a folder and a device removed from
it (each after the browser's confirmation), without the CLI."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect
from webhelpers import ok, sign_in, wait_for

from p2psync.identity import generate_identity


def folder_settings(home) -> dict:
    return json.loads(ok(home, "config", "show", "--folder", "f", "--json"))


def test_folder_settings_changed_and_folder_and_device_removed_in_the_page(
    start_daemon, context, tmp_path
) -> None:
    alpha = start_daemon("alpha")
    data = tmp_path / "data"
    other = str(generate_identity().device_id)
    ok(alpha.home, "peer", "add", other, "--name", "beta")
    ok(alpha.home, "folder", "add", str(data), "--id", "f", "--share", other)
    (data / "keep-me.txt").write_text("stays on disk\n")

    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations
    sign_in(page, alpha)
    page.goto(page.url.rstrip("/") + "/folders/f")
    expect(page.get_by_role("heading", name="Change settings")).to_be_visible()

    page.get_by_label("Versioning").select_option("simple")
    page.get_by_label("versions kept (simple)").fill("4")
    page.get_by_label("Full rescan every (seconds; 0: never)").fill("600")
    page.get_by_label("Watch for changes").uncheck()
    page.get_by_label("Type").select_option("receiveonly")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_contain_text("Saved the settings of folder 'f'")
    saved = folder_settings(alpha.home)
    assert saved["versioning"]["type"] == "simple" and saved["versioning"]["keep"] == 4
    assert saved["rescan_interval_s"] == 600 and saved["watcher"] is False
    assert saved["type"] == "receiveonly"
    # the running folder follows: the live section shows the new type
    expect(page.locator("#folder_detail")).to_contain_text("receive only")

    # a value the config refuses is shown where the form is, and nothing is saved
    page.get_by_label("versions kept (simple)").evaluate("el => el.removeAttribute('min')")
    page.get_by_label("versions kept (simple)").fill("-3")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_contain_text("keep")
    assert folder_settings(alpha.home)["versioning"]["keep"] == 4

    page.get_by_role("button", name="Remove this folder").click()
    expect(page).to_have_url(re.compile(r"/$"))
    wait_for(
        lambda: not json.loads(ok(alpha.home, "folder", "list", "--json")), what="the folder gone"
    )
    assert (data / "keep-me.txt").read_text() == "stays on disk\n"

    page.get_by_role("button", name="Remove beta").click()
    expect(page.locator("#flash")).to_contain_text("no longer trusted")
    assert json.loads(ok(alpha.home, "peer", "list", "--json")) == []
