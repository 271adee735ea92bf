"""Issue 23: every page is usable with the keyboard and a screen reader, and fits a
phone-sized window — checked on each page with content in it, not only the overview.

Per page: one main landmark and a first-level heading; every control has a name a screen
reader can read (a label, aria-label, or a button's text); Tab moves through the page's
controls, each one visibly focused in turn; and at 375 × 740 CSS pixels nothing is wider
than the window (no sideways scrolling)."""

from __future__ import annotations

import json

from playwright.sync_api import expect
from webhelpers import ok, sign_in

PHONE = {"width": 375, "height": 740}

UNNAMED_CONTROLS = """[...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, a[href]')]
  .filter(e => e.offsetParent !== null)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby') && !e.textContent.trim()
               && !e.getAttribute('title'))
  .map(e => e.outerHTML.slice(0, 120))"""

WIDER_THAN_WINDOW = """(() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > width + 1
                 && getComputedStyle(e).position !== 'fixed'
                 && !e.closest('.scroll-x, pre, table'))
    .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className);
  return {scroll: document.scrollingElement.scrollWidth - width, wide: wide.slice(0, 5)};
})()"""

FOCUSED = """(() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect();
  return {tag: e.tagName, visible: r.width > 0 && r.height > 0,
          outline: getComputedStyle(e).outlineStyle !== 'none'
                   || getComputedStyle(e).boxShadow !== 'none'};
})()"""


def _pages(alpha, tmp_path) -> list[str]:
    docs = tmp_path / "docs"
    ok(alpha.home, "folder", "add", str(docs), "--id", "docs")
    (docs / "report.txt").write_text("quarterly report\n")
    ok(alpha.home, "scan", "docs")
    created = ok(alpha.home, "link", "create", "docs/report.txt", "--json")
    link_id = json.loads(created)["link"]["id"]
    return [
        "/",
        "/folders/docs",
        "/events",
        "/ui/history",
        "/ui/history/docs/report.txt",
        "/ui/links",
        f"/ui/links/{link_id}",
    ]


def test_every_page_works_with_keyboard_screen_reader_and_phone(
    start_daemon, context, tmp_path
) -> None:
    alpha = start_daemon("alpha")
    paths = _pages(alpha, tmp_path)
    page = context.new_page()
    sign_in(page, alpha)
    for path in paths:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(alpha.url + path)
        expect(page.get_by_role("main")).to_have_count(1)
        expect(page.locator("h1")).to_have_count(1)
        assert page.evaluate(UNNAMED_CONTROLS) == [], path

        # the keyboard alone reaches the page's controls, each visibly focused
        page.locator("body").focus()
        tags = []
        for _ in range(6):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            assert focused is not None, f"{path}: Tab left the focus nowhere"
            assert focused["visible"] and focused["outline"], (path, focused)
            tags.append(focused["tag"])
        assert len(tags) == 6

        page.set_viewport_size(PHONE)
        page.goto(alpha.url + path)
        overflow = page.evaluate(WIDER_THAN_WINDOW)
        assert overflow["scroll"] <= 1 and overflow["wide"] == [], (path, overflow)
