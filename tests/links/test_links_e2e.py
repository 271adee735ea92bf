"""Share links through the CLI against a real daemon; downloads with a real HTTPS client
that trusts only the listener's certificate (pinned)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from linkhelpers import Daemon, ok, ok_json, pinned, run_cli


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    (d.data / "report.pdf").write_bytes(b"%PDF-1.4 quarterly")
    (d.data / "photos").mkdir()
    (d.data / "photos" / "a.jpg").write_bytes(b"\xff\xd8jpeg-a")
    (d.data / "photos" / "b.jpg").write_bytes(b"\xff\xd8jpeg-b")
    try:
        yield d
    finally:
        d.stop()


def test_create_download_list_revoke(daemon):
    listed = ok_json(daemon.home, "link", "list")
    assert listed["links"] == [] and listed["listener"]["running"] is False
    assert not daemon.cert.exists()  # the listener is off until the first link

    out = ok(daemon.home, "link", "create", "docs/report.pdf", "--expires", "7d")
    assert "https://127.0.0.1:" in out and "fingerprint" in out
    file_link = ok_json(daemon.home, "link", "list")["links"][0]
    fingerprint = ok_json(daemon.home, "link", "list")["listener"]["fingerprint"]
    assert fingerprint in out

    folder_link = ok_json(daemon.home, "link", "create", "docs/photos")["link"]
    with pinned(daemon.cert) as client:
        r = client.get(file_link["url"])
        assert r.status_code == 200 and r.content == b"%PDF-1.4 quarterly"
        listing = client.get(folder_link["url"])
        assert "a.jpg" in listing.text and "b.jpg" in listing.text
        z = client.get(folder_link["url"] + "?zip")
        with zipfile.ZipFile(io.BytesIO(z.content)) as archive:
            assert {n: archive.read(n) for n in archive.namelist()} == {
                "a.jpg": b"\xff\xd8jpeg-a",
                "b.jpg": b"\xff\xd8jpeg-b",
            }

    views = {v["id"]: v for v in ok_json(daemon.home, "link", "list")["links"]}
    assert views[file_link["id"]]["downloads"] == 1
    (d,) = views[file_link["id"]]["recent_downloads"]
    assert (d["address"], d["what"], d["outcome"], d["bytes"]) == (
        "127.0.0.1",
        "report.pdf",
        "complete",
        len(b"%PDF-1.4 quarterly"),
    )
    assert views[folder_link["id"]]["recent_downloads"][0]["what"] == "photos/ (zip)"
    human = ok(daemon.home, "link", "list", "--downloads")
    assert "report.pdf" in human and "complete" in human

    ok(daemon.home, "link", "revoke", file_link["url"])
    with pinned(daemon.cert) as client:
        r = client.get(file_link["url"])
        assert r.status_code == 410 and b"quarterly" not in r.content
        assert client.get(folder_link["url"]).status_code == 200
    assert {v["id"]: v["state"] for v in ok_json(daemon.home, "link", "list")["links"]} == {
        file_link["id"]: "revoked",
        folder_link["id"]: "active",
    }


def test_password_link_through_the_cli(daemon):
    out = ok(daemon.home, "link", "create", "docs/photos", "--password", input="pa55\npa55\n")
    url = next(line.strip() for line in out.splitlines() if line.strip().startswith("https://"))
    with pinned(daemon.cert) as client:
        assert client.get(url).status_code == 401
        assert client.post(url, data={"password": "nope"}).status_code == 401
        r = client.post(url, data={"password": "pa55"}, follow_redirects=True)
        assert r.status_code == 200 and "a.jpg" in r.text
        assert client.get(url + "a.jpg").content == b"\xff\xd8jpeg-a"
    view = ok_json(daemon.home, "link", "list")["links"][0]
    assert view["has_password"] is True and "password" not in view


def test_links_survive_a_restart_and_list_offline(daemon):
    link = ok_json(daemon.home, "link", "create", "docs/report.pdf", "--max-downloads", "1")["link"]
    daemon.stop()
    offline = ok_json(daemon.home, "link", "list")
    assert offline["links"][0]["id"] == link["id"]
    assert offline["links"][0]["url"] == link["url"]  # the remembered port
    daemon.start()
    with pinned(daemon.cert) as client:
        assert client.get(link["url"]).content == b"%PDF-1.4 quarterly"
        assert client.get(link["url"]).status_code == 410  # used up
    daemon.stop()
    ok(daemon.home, "link", "revoke", link["id"])  # offline revoke writes the store
    assert ok_json(daemon.home, "link", "list")["links"][0]["state"] == "revoked"


def test_cli_refuses_bad_targets_and_durations(daemon):
    for args, needle in [
        (("docs/nothing.txt",), "does not exist"),
        (("docs/../x",), ""),
        (("nofolder",), "does not exist"),
        (("docs", "--expires", "soon"), "duration"),
        (("docs", "--listen", "nowhere"), "HOST:PORT"),
    ]:
        r = run_cli(daemon.home, "link", "create", *args)
        assert r.exit_code != 0, args
        assert needle in r.output, (args, r.output)
    assert json.loads(run_cli(daemon.home, "link", "list", "--json").output)["links"] == []
