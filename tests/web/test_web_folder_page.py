"""Issue 23: the folder page: a conflict resolved with one click, an old version restored."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect
from webhelpers import ok, sign_in, wait_for


def connected(home) -> bool:
    devices = json.loads(ok(home, "status", "--json"))["devices"]
    return bool(devices) and devices[0]["connected"]


def test_conflict_kept_from_the_page_and_an_old_version_restored(
    start_daemon, context, tmp_path
) -> None:
    alpha, beta = start_daemon("alpha"), start_daemon("beta")
    data = {"alpha": tmp_path / "a-data", "beta": tmp_path / "b-data"}
    ok(alpha.home, "peer", "add", beta.device_id, "--name", "beta", "--address", beta.listen)
    ok(beta.home, "peer", "add", alpha.device_id, "--name", "alpha", "--address", alpha.listen)
    ok(beta.home, "folder", "add", str(data["beta"]), "--id", "f")  # beta has its own "f"
    ok(alpha.home, "folder", "add", str(data["alpha"]), "--id", "f", "--share", beta.device_id)

    # on beta's page, alpha's offer of "f" merges into beta's own folder "f"
    bctx = context.browser.new_context()
    bpage = bctx.new_page()
    sign_in(bpage, beta)
    offer = bpage.locator('li.pending-folder[data-folder="f"]')
    expect(offer).to_contain_text(f"You have a folder with this ID at {data['beta']}")
    offer.get_by_role("button", name=re.compile("^Accept folder")).click()
    expect(bpage.locator("#flash")).to_contain_text(f"Accepted folder 'f' at {data['beta']}")
    bctx.close()
    (data["alpha"] / "x.txt").write_text("base\n")
    ok(alpha.home, "scan", "f")
    wait_for(lambda: (data["beta"] / "x.txt").exists(), what="x.txt on beta")

    # a conflict made on purpose: both change x.txt while disconnected
    ok(alpha.home, "peer", "pause", beta.device_id)
    wait_for(lambda: not connected(beta.home), what="the disconnection")
    for name, d in data.items():
        (d / "x.txt").write_text(f"changed on {name}\n")
    ok(alpha.home, "scan", "f")
    ok(beta.home, "scan", "f")
    ok(alpha.home, "peer", "resume", beta.device_id)

    page = context.new_page()
    sign_in(page, alpha)
    page.locator('article.folder[data-folder="f"] h3 a').click()
    expect(page).to_have_url(re.compile(r"/folders/f$"))
    row = page.locator("table.conflicts tbody tr").first
    expect(row).to_contain_text("x.txt")  # arrives live once the devices reconnect
    copy = row.get_attribute("data-copy")
    wait_for(lambda: (data["alpha"] / copy).exists(), what="the copy on alpha's disk")
    copy_text = (data["alpha"] / copy).read_text()
    winner_text = (data["alpha"] / "x.txt").read_text()
    assert {copy_text, winner_text} == {"changed on alpha\n", "changed on beta\n"}

    row.get_by_role("button", name="Keep the conflict copy").click()
    expect(page.locator("#flash")).to_contain_text("went to the folder's versions")
    for d in data.values():  # both nodes converge on the kept version, no copy left
        wait_for(
            lambda d=d: (d / "x.txt").read_text() == copy_text and not (d / copy).exists(),
            what=f"the kept version in {d}",
        )
    expect(page.locator("table.conflicts")).to_have_count(0)

    # the version not kept is an old version now: restore it from the page
    restore = page.get_by_role("button", name=re.compile(r"^Restore x\.txt from"))
    restore.first.click()
    expect(page.locator("#flash")).to_contain_text("Restored x.txt")
    for d in data.values():
        wait_for(lambda d=d: (d / "x.txt").read_text() == winner_text, what=f"restored in {d}")

    # the ignore-pattern editor previews which names a draft ignores, then saves it
    (data["alpha"] / "debug.log").write_text("noise\n")
    patterns = page.get_by_label(re.compile("^Patterns in"))
    patterns.fill("[oops")
    expect(page.locator("#ignore-preview .error")).to_contain_text("[oops")
    patterns.fill("*.log\n")
    preview = page.locator("#ignore-preview")
    expect(preview).to_contain_text("debug.log")
    expect(preview).not_to_contain_text("x.txt")
    page.get_by_role("button", name="Save patterns").click()
    expect(page.locator("#ignore-result")).to_contain_text("Saved the ignore patterns")
    assert (data["alpha"] / ".p2pignore").read_text() == "*.log\n"
