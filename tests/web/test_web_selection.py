"""Selective sync in the web interface: the folder page shows what this device keeps
and changes it (the same validation as the CLI and the API)."""

from __future__ import annotations

from playwright.sync_api import expect
from webhelpers import ok, sign_in

from p2psync.config import load_config


def test_selection_shown_and_changed_in_the_folder_page(start_daemon, context, tmp_path) -> None:
    alpha = start_daemon("alpha")
    data = tmp_path / "data"
    ok(alpha.home, "folder", "add", str(data), "--id", "f")
    page = context.new_page()
    sign_in(page, alpha)
    page.goto(page.url.rstrip("/") + "/folders/f")
    expect(page.locator("#folder_detail")).to_contain_text("the whole folder")

    page.get_by_role("textbox", name="Directories this device keeps").fill("docs\nphotos/2024/\n")
    page.get_by_role("button", name="Save selection").click()
    expect(page.locator("#selection-result")).to_contain_text("now keeps docs, photos/2024")
    assert load_config(alpha.home).folder("f").selected == ("docs", "photos/2024")
    expect(page.locator("#folder_detail")).to_contain_text("selective sync")

    page.get_by_role("textbox", name="Directories this device keeps").fill("../etc")
    page.get_by_role("button", name="Save selection").click()
    expect(page.locator("#selection-result")).to_contain_text("..")
    assert load_config(alpha.home).folder("f").selected == ("docs", "photos/2024")
