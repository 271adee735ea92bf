"""Receive-only and send-only folders tell the user where they stand, and revert leaves
nothing local behind without losing it (issue 18.7)."""

from __future__ import annotations

import json

import two_nodes
from test_cli_daemon import ok, wait_for
from two_nodes import folder_of, share, text_of

pair = two_nodes.pair  # the fixture


def versions(home, folder_id: str) -> set[str]:
    return {v["name"] for v in json.loads(ok(home, "versions", "list", folder_id, "--json"))}


def test_receive_only_local_changes_are_shown_and_reverted_into_the_archive(pair) -> None:
    nodes = pair()
    (_, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    data_a.mkdir(parents=True)
    (data_a / "x.txt").write_text("from a\n")
    share(nodes, "ro", "--type", "receiveonly")
    assert json.loads(ok(home_b, "folder", "list", "--json"))[0]["type"] == "receiveonly"
    wait_for(lambda: (data_b / "x.txt").exists(), what="x.txt on b")
    wait_for(lambda: folder_of(home_b, "ro")["state"] == "idle", what="b idle")

    (data_b / "x.txt").write_text("changed on b\n")
    (data_b / "added").mkdir()
    (data_b / "added" / "new.txt").write_text("added on b\n")
    ok(home_b, "scan", "ro")
    f = wait_for(
        lambda: (g := folder_of(home_b, "ro"))["local_changes"] == 3 and g,
        what="three local changes on b",
    )
    assert f["in_sync"] is False
    assert "local changes: 3 (revert to drop them" in ok(home_b, "status")

    assert "Reverting 3 local change(s)" in ok(home_b, "folder", "revert", "ro")
    wait_for(
        lambda: text_of(data_b / "x.txt") == "from a\n",
        what="x.txt back to a's version",
    )
    # the added file and directory are gone from the folder, kept in the archive
    assert not (data_b / "added").exists()
    assert versions(home_b, "ro") == {"x.txt", "added/new.txt"}
    wait_for(
        lambda: (g := folder_of(home_b, "ro"))["local_changes"] == 0 and g["in_sync"],
        what="b in sync after the revert",
    )
    ok(home_b, "scan", "ro")  # a rescan finds nothing new to report
    wait_for(lambda: folder_of(home_b, "ro")["state"] == "idle", what="b idle again")
    assert folder_of(home_b, "ro")["local_changes"] == 0
    # nothing of b's changes ever reached a
    assert sorted(p.name for p in data_a.iterdir() if not p.name.startswith(".p2p")) == ["x.txt"]
    assert (data_a / "x.txt").read_text() == "from a\n"


def test_send_only_folder_behind_its_peers_says_so_and_override_pushes(pair) -> None:
    nodes = pair()
    (home_a, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    for data in (data_a, data_b):  # the same file on both before sharing
        data.mkdir(parents=True)
        (data / "doc.txt").write_text("v1\n")
    share(nodes, "so", "--type", "sendonly")
    wait_for(
        lambda: (g := folder_of(home_b, "so"))["state"] == "idle" and g["in_sync"],
        what="b in sync",
    )
    (data_a / "doc.txt").write_text("v2 from a\n")
    ok(home_a, "scan", "so")
    f = wait_for(
        lambda: (g := folder_of(home_b, "so"))["behind"] == 1 and g,
        what="b behind by one item",
    )
    assert f["in_sync"] is False and (data_b / "doc.txt").read_text() == "v1\n"
    assert "behind: 1 (override to push yours" in ok(home_b, "status")

    ok(home_b, "folder", "override", "so")
    wait_for(lambda: text_of(data_a / "doc.txt") == "v1\n", what="b's version on a")
    wait_for(lambda: folder_of(home_b, "so")["behind"] == 0, what="b no longer behind")
