"""Screenshots of the web interface's pages for docs/ (`make screenshots`).

Starts two real daemons in a temporary directory, sets up a shared folder between them
with the CLI, leaves one device and one folder pending, and photographs the pages of the
first with Debian's Chromium (the same launch as tests/web).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "web"))

from webhelpers import CHROMIUM, CHROMIUM_ARGS, Daemon, ok, sign_in, wait_for  # noqa: E402

OUT = ROOT / "docs" / "img"


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="p2psync-shots-") as tmp:
        base = Path(tmp)
        office, laptop, stranger = (Daemon(base, n) for n in ("office", "laptop", "stranger"))
        try:
            docs = base / "office-docs"
            docs.mkdir()
            for i in range(5):
                (docs / f"report-{i}.txt").write_text("quarterly numbers\n" * 200)
            (docs / "plan.sync-conflict-20261207-101500-ABCDEFG.txt").write_text("plan B\n")
            (docs / "plan.txt").write_text("plan A\n")
            ok(
                office.home,
                "peer",
                "add",
                laptop.device_id,
                "--name",
                "laptop",
                "--address",
                laptop.listen,
            )
            ok(
                laptop.home,
                "peer",
                "add",
                office.device_id,
                "--name",
                "office",
                "--address",
                office.listen,
            )
            ok(
                office.home,
                "folder",
                "add",
                str(docs),
                "--id",
                "docs",
                "--label",
                "Documents",
                "--share",
                laptop.device_id,
            )
            ok(
                laptop.home,
                "folder",
                "add",
                str(base / "laptop-docs"),
                "--id",
                "docs",
                "--share",
                office.device_id,
            )
            photos = base / "laptop-photos"
            photos.mkdir()
            ok(
                laptop.home,
                "folder",
                "add",
                str(photos),
                "--id",
                "photos",
                "--label",
                "Photos",
                "--share",
                office.device_id,
            )
            ok(stranger.home, "peer", "add", office.device_id, "--address", office.listen)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.goto(office.url + "/")
                page.screenshot(path=str(OUT / "web-signin.png"))
                sign_in(page, office)
                page.locator("li.pending-folder").wait_for()
                page.locator("li.pending-device").wait_for()
                wait_for(lambda: (base / "laptop-docs" / "report-4.txt").exists(), what="sync")
                page.get_by_text("laptop (in sync)").first.wait_for()
                page.screenshot(path=str(OUT / "web-overview.png"), full_page=True)
                page.goto(office.url + "/folders/docs")
                page.locator("table.versions, table.conflicts, .recent").first.wait_for()
                page.screenshot(path=str(OUT / "web-folder.png"), full_page=True)
                page.goto(office.url + "/events")
                page.screenshot(path=str(OUT / "web-events.png"))
                page.goto(office.url + "/ui/history")
                page.locator("table.history").wait_for()
                page.screenshot(path=str(OUT / "web-history.png"), full_page=True)
                ok(office.home, "link", "create", "docs/plan.txt", "--expires", "7d")
                page.goto(office.url + "/ui/links")
                page.locator("table.links").wait_for()
                page.screenshot(path=str(OUT / "web-links.png"), full_page=True)
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone.context.add_cookies(page.context.cookies())
                phone.goto(office.url + "/")
                phone.screenshot(path=str(OUT / "web-phone.png"))
                browser.close()
        finally:
            for d in (office, laptop, stranger):
                d.stop()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
