"""Issue 24.2 in the browser: the history page follows changes made on two devices,
filters them, opens one file's history and restores a version from it; the folder
page's recent changes link there."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from webhelpers import ok, sign_in, wait_for

# The history log is written just after the change's event: a row may come with the live
# poll's next answer (within 5 s).
LIVE = 15_000


def text_of(path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def test_history_page_filters_and_a_file_history_with_restore(
    start_daemon, context, tmp_path
) -> None:
    alpha, beta = start_daemon("alpha"), start_daemon("beta")
    docs_a, docs_b, notes = tmp_path / "a-docs", tmp_path / "b-docs", tmp_path / "a-notes"
    ok(alpha.home, "peer", "add", beta.device_id, "--name", "beta", "--address", beta.listen)
    ok(beta.home, "peer", "add", alpha.device_id, "--name", "alpha", "--address", alpha.listen)
    ok(beta.home, "folder", "add", str(docs_b), "--id", "docs", "--share", alpha.device_id)
    ok(alpha.home, "folder", "add", str(docs_a), "--id", "docs", "--share", beta.device_id)
    ok(alpha.home, "config", "set", "--folder", "docs", "versioning.type", "simple")
    ok(alpha.home, "folder", "add", str(notes), "--id", "notes", "--label", "Notes")

    # beta's user writes, edits and renames; alpha pulls it all
    (docs_b / "report.txt").write_text("draft 1\n")
    (docs_b / "b.txt").write_text("to be renamed\n")
    ok(beta.home, "scan", "docs")
    wait_for(lambda: text_of(docs_a / "b.txt") == "to be renamed\n", what="b.txt on alpha")
    (docs_b / "report.txt").write_text("draft 2, longer\n")
    (docs_b / "b.txt").rename(docs_b / "c.txt")
    ok(beta.home, "scan", "docs")
    wait_for(lambda: text_of(docs_a / "c.txt") == "to be renamed\n", what="the rename on alpha")
    wait_for(lambda: text_of(docs_a / "report.txt") == "draft 2, longer\n", what="the edit")
    # alpha's own user: a note, and a file made and deleted again
    (notes / "n.txt").write_text("note\n")
    ok(alpha.home, "scan", "notes")
    (docs_a / "mine.txt").write_text("mine\n")
    ok(alpha.home, "scan", "docs")
    wait_for(lambda: (docs_b / "mine.txt").exists(), what="mine.txt on beta")
    (docs_a / "mine.txt").unlink()
    ok(alpha.home, "scan", "docs")

    page = context.new_page()
    sign_in(page, alpha)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    expect(page).to_have_url(re.compile(r"/ui/history$"))
    table = page.locator("#history_list table.history")
    deleted = table.locator('tr[data-name="mine.txt"][data-kind="deleted"]')
    expect(deleted).to_contain_text("alpha (this device)", timeout=LIVE)  # arrives live
    expect(deleted.locator("time")).to_have_attribute("title", re.compile(r" UTC$"))
    edit = table.locator('tr[data-name="report.txt"][data-kind="modified"]')
    expect(edit).to_contain_text("beta")
    expect(edit).to_contain_text("16 B")
    expect(table.locator('tr[data-name="report.txt"][data-kind="created"]')).to_have_count(1)
    renamed = table.locator('tr[data-name="c.txt"][data-kind="renamed to"]')
    expect(renamed).to_contain_text("renamed b.txt → c.txt")
    expect(renamed).to_contain_text("beta")
    expect(table.locator('tr[data-name="n.txt"]')).to_contain_text("Notes")
    names = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert names.index("mine.txt") < names.index("n.txt") < names.index("report.txt")

    # filters: by kind, by folder, by device, by name
    page.get_by_label("Kind of change").select_option("deleted")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"kind=deleted"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_have_attribute("data-name", "mine.txt")
    page.goto(alpha.url + "/ui/history")
    page.get_by_label("Folder").select_option("notes")
    page.get_by_role("button", name="Show").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_have_attribute("data-name", "n.txt")
    page.goto(alpha.url + "/ui/history")
    page.get_by_label("Changed by").select_option(label="beta")
    page.get_by_label("Name contains").fill("REPORT")
    page.get_by_role("button", name="Show").click()
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator('tbody tr[data-name="report.txt"]')).to_have_count(2)
    # a filter that makes no sense is said so, in place
    page.goto(alpha.url + "/ui/history?since=2y")
    expect(page.locator("#history_list .error")).to_contain_text("'since' must be one of")

    # one file's history: its changes and the version alpha archived when draft 2 came
    page.goto(alpha.url + "/ui/history?q=report")
    table.get_by_role("link", name="report.txt").first.click()
    expect(page).to_have_url(re.compile(r"/ui/history/docs/report\.txt$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("report.txt")
    changes = page.locator("#file_history table.history tbody tr")
    expect(changes).to_have_count(2)
    expect(changes.first).to_have_attribute("data-kind", "modified")
    restore = page.get_by_role("button", name=re.compile("^Restore the version from"))
    expect(restore).to_have_count(1)
    restore.click()
    expect(page.locator("#flash")).to_contain_text("Restored report.txt")
    for d in (docs_a, docs_b):
        wait_for(lambda d=d: text_of(d / "report.txt") == "draft 1\n", what=f"restored in {d}")
    expect(changes).to_have_count(3, timeout=LIVE)  # the restore is a change too, shown live

    # a name that could not be in a folder is refused in place, not looked up
    page.goto(alpha.url + "/ui/history/docs/a//b.txt")
    expect(page.locator("#file_history .error")).to_contain_text("empty")

    # the folder page's recent changes link to the folder's history
    page.goto(alpha.url + "/folders/docs")
    recent = page.locator("ul.recent")
    expect(recent).to_contain_text("mine.txt")
    page.get_by_role("link", name="All changes in this folder").click()
    expect(page).to_have_url(re.compile(r"/ui/history\?folder=docs$"))
    expect(page.get_by_label("Folder")).to_have_value("docs")
    expect(table.locator('tr[data-name="n.txt"]')).to_have_count(0)
