"""Issue 24.2: who changed what, when. Two daemons; a's user creates, edits, renames and
deletes; b records what it pulled under a's name, a what it scanned under its own;
`p2psync history PATH` lists one file's changes and its restorable versions; filters by
device and time; the log survives a restart and is readable with the daemon stopped."""

from __future__ import annotations

import json
import os
import signal

from test_cli_cluster import start
from test_cli_daemon import init_home, ok, wait_for
from two_nodes import folder_of, pair, share, status, text_of  # noqa: F401 - pair is a fixture


def entries(home, *args: str) -> list[dict]:
    return json.loads(ok(home, "history", *args, "--json"))["entries"]


def test_history_of_changes_made_on_one_device_and_pulled_on_the_other(pair, tmp_path) -> None:  # noqa: F811
    nodes = pair()
    (home_a, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    share(nodes, "docs")
    ok(home_b, "config", "set", "--folder", "docs", "versioning.type", "simple")
    a_id = status(home_a)["system"]["device_id"]

    (data_a / "report.txt").write_text("draft 1\n")
    ok(home_a, "scan", "docs")
    wait_for(lambda: text_of(data_b / "report.txt") == "draft 1\n", 30, "the first draft on b")
    (data_a / "report.txt").write_text("draft 2, longer\n")
    ok(home_a, "scan", "docs")
    wait_for(lambda: text_of(data_b / "report.txt") == "draft 2, longer\n", 30, "the edit on b")
    (data_a / "old.txt").write_text("to be removed\n")
    ok(home_a, "scan", "docs")
    wait_for(lambda: (data_b / "old.txt").exists(), 30, "old.txt on b")
    (data_a / "old.txt").unlink()
    ok(home_a, "scan", "docs")
    wait_for(lambda: not (data_b / "old.txt").exists(), 30, "the deletion on b")

    # b: what it pulled, made by a
    on_b = entries(home_b, str(data_b / "report.txt"))
    assert [(e["kind"], e["origin"], e["device"], e["device_name"]) for e in on_b] == [
        ("modified", "pulled", a_id, "a"),
        ("created", "pulled", a_id, "a"),
    ]
    assert on_b[0]["size"] == len("draft 2, longer\n") and on_b[0]["hash"]
    assert on_b[0]["time"] >= on_b[1]["time"]
    versions = json.loads(ok(home_b, "history", str(data_b / "report.txt"), "--json"))["versions"]
    assert len(versions) == 1  # draft 1, archived by b's versioning when draft 2 came
    text = ok(home_b, "history", str(data_b / "report.txt"))
    assert "modified  by a [pulled" in text and "Versions that can be restored: 1" in text

    folder_b = entries(home_b, "--folder", "docs")
    assert ("old.txt", "deleted") in {(e["path"], e["kind"]) for e in folder_b}
    assert entries(home_b, "--folder", "docs", "--device", "b") == []  # b changed nothing
    assert len(entries(home_b, "--folder", "docs", "--device", "a")) == len(folder_b)
    assert entries(home_b, "--folder", "docs", "--since", "1h")  # all of it is recent

    # a: what its own scans found, by itself
    on_a = entries(home_a, "--folder", "docs")
    assert {e["origin"] for e in on_a} == {"local"}
    assert {e["device_name"] for e in on_a} == {"a (this device)"}
    assert ("report.txt", "modified") in {(e["path"], e["kind"]) for e in on_a}


def test_the_log_survives_a_restart_and_reads_without_the_daemon(tmp_path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    init_home(home, "solo")
    daemon = start(home)
    try:
        ok(home, "folder", "add", str(data), "--id", "notes")
        (data / "a.txt").write_text("one\n")
        (data / "sub").mkdir()
        (data / "sub" / "b.txt").write_text("two\n")
        ok(home, "scan", "notes")
        wait_for(lambda: len(entries(home, "--folder", "notes")) == 3, 30, "three changes")
        os.rename(data / "sub" / "b.txt", data / "sub" / "c.txt")
        ok(home, "scan", "notes")
        wait_for(
            lambda: (
                {e["kind"] for e in entries(home, str(data / "sub"))}
                >= {"renamed from", "renamed to"}
            ),
            30,
            "the rename recorded as one",
        )
        before = entries(home, "--folder", "notes")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    assert entries(home, "--folder", "notes") == before  # no daemon: the log file itself
    assert [e["path"] for e in entries(home, str(data / "sub" / "c.txt"))] == ["sub/c.txt"]
    daemon = start(home)
    try:
        assert entries(home, "--folder", "notes") == before
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)


def test_a_send_only_folder_records_the_remote_changes_it_refuses(pair, tmp_path) -> None:  # noqa: F811
    """b keeps its folder send-only: a's files and edits are refused there, each version
    once, under a's name; b's disk is untouched."""
    nodes = pair()
    (home_a, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    data_a.mkdir(parents=True)
    (data_a / "plan.txt").write_text("plan v1\n")
    share(nodes, "plans", "--type", "sendonly")
    a_id = status(home_a)["system"]["device_id"]

    def refused() -> list[dict]:
        return [e for e in entries(home_b, "--folder", "plans") if e["kind"] == "refused"]

    wait_for(refused, 30, "b's refusal in its history")
    (entry,) = refused()
    assert (entry["path"], entry["origin"], entry["device"], entry["device_name"]) == (
        "plan.txt", "pulled", a_id, "a",
    )  # fmt: skip
    assert entry["detail"] == "changed on another device; send-only folder: not applied here"
    (data_a / "plan.txt").write_text("plan v2 from a\n")  # a new version: refused again
    (data_a / "other.txt").write_text("another file\n")
    ok(home_a, "scan", "plans")
    wait_for(lambda: len(refused()) == 3, 30, "the next two refusals")
    assert sorted(e["path"] for e in refused()) == ["other.txt", "plan.txt", "plan.txt"]
    assert not (data_b / "plan.txt").exists() and not (data_b / "other.txt").exists()
    ok(home_b, "scan", "plans")  # more rounds on b: each version is reported once only
    wait_for(lambda: folder_of(home_b, "plans")["state"] == "idle", 30, "b idle")
    assert len(refused()) == 3
