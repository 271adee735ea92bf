"""Issue 23: the overview's progress bar and receive rate move while a folder pulls, live,
and reach 100 % when it is done (the transfer is slowed so the page can be watched)."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect
from webhelpers import ok, sign_in, wait_for

PARTIAL = re.compile(r"^(?:[1-9]|[1-9]\d)(?:\.\d+)?$")  # strictly between 0 and 100
DONE = re.compile(r"^100(?:\.0+)?$")


def test_the_progress_bar_and_rate_move_while_a_folder_pulls(start_daemon, context, tmp_path):
    alpha, beta = start_daemon("alpha"), start_daemon("beta")
    data = {"alpha": tmp_path / "a-data", "beta": tmp_path / "b-data"}
    ok(beta.home, "config", "set", "max_recv_kbps", "400")  # about 10 s for 4 MiB
    ok(alpha.home, "peer", "add", beta.device_id, "--name", "beta", "--address", beta.listen)
    ok(beta.home, "peer", "add", alpha.device_id, "--name", "alpha", "--address", alpha.listen)
    ok(alpha.home, "folder", "add", str(data["alpha"]), "--id", "f", "--share", beta.device_id)
    # not just "f": "No pending folders." has one
    wait_for(lambda: "offered by" in ok(beta.home, "folder", "pending"), what="the offer on beta")
    ok(beta.home, "folder", "accept", "f", str(data["beta"]))

    page = context.new_page()
    sign_in(page, beta)
    card = page.locator('article.folder[data-folder="f"]')
    bar = card.locator("progress")
    expect(bar).to_have_attribute("value", DONE)  # empty and in sync

    payload = os.urandom(4 * 1024 * 1024)
    (data["alpha"] / "video.bin").write_bytes(payload)
    ok(alpha.home, "scan", "f")
    expect(bar).to_have_attribute("value", PARTIAL, timeout=20_000)  # moving, live
    expect(card.locator("dd.pull-rate")).to_contain_text("/s")
    expect(bar).to_have_attribute("value", DONE, timeout=60_000)
    assert (data["beta"] / "video.bin").read_bytes() == payload
    expect(card.locator("dd.pull-rate")).to_have_count(0)  # nothing left to receive
