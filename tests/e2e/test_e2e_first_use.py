"""Issue 18.10: a new user's first steps, followed literally from `init`'s own advice."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_daemon import ok, wait_for
from test_e2e_reconnect import start, stop


def init_with_default_folder(home: Path, name: str, sync: Path) -> str:
    out = ok(
        home,
        "init",
        "--name",
        name,
        "--no-mdns",
        "--listen",
        "tcp://127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--default-folder-path",
        str(sync),
    )
    return out


def test_next_steps_of_init_share_the_default_folder(tmp_path) -> None:
    homes = {n: tmp_path / n / "home" for n in ("a", "b")}
    syncs = {n: tmp_path / n / "Sync" for n in ("a", "b")}
    advice = init_with_default_folder(homes["a"], "alpha", syncs["a"])
    init_with_default_folder(homes["b"], "beta", syncs["b"])
    assert "folder accept default" in advice  # the other side's step is named
    procs = [start(homes[n]) for n in ("a", "b")]
    try:
        info = {n: json.loads(ok(homes[n], "status", "--json"))["system"] for n in homes}
        for n, m in (("a", "b"), ("b", "a")):
            ok(
                homes[n],
                "peer",
                "add",
                info[m]["device_id"],
                "--name",
                m,
                "--address",
                info[m]["listen_addresses"][0],
            )
        (syncs["a"] / "hello.txt").write_text("from a\n")
        ok(homes["a"], "folder", "share", "default", info["b"]["device_id"])
        wait_for(
            lambda: "default" in ok(homes["b"], "folder", "pending"),
            timeout=30,
            what="the offer on b",
        )
        assert "exists here; share it with: p2psync folder accept default" in ok(
            homes["b"], "folder", "pending"
        )
        out = ok(homes["b"], "folder", "accept", "default")
        assert "existing folder" in out and str(syncs["b"]) in out
        assert "No pending folders" in ok(homes["b"], "folder", "pending")
        ok(homes["a"], "scan", "default")
        try:
            wait_for(lambda: (syncs["b"] / "hello.txt").exists(), timeout=30, what="the file on b")
        except AssertionError:  # say what the daemons saw
            logs = {n: (homes[n] / "p2psync.log").read_text()[-4000:] for n in homes}
            raise AssertionError(f"hello.txt did not reach b; logs: {logs}") from None
        assert not (syncs["b"] / "default").exists()  # not nested in a new folder
        folders = json.loads(ok(homes["b"], "folder", "list", "--json"))
        assert [f["id"] for f in folders] == ["default"]
    finally:
        stop(procs)


def test_sharing_back_instead_of_accepting_clears_the_offer(tmp_path) -> None:
    homes = {n: tmp_path / n / "home" for n in ("a", "b")}
    for n in homes:
        init_with_default_folder(homes[n], n, tmp_path / n / "Sync")
    procs = [start(homes[n]) for n in ("a", "b")]
    try:
        info = {n: json.loads(ok(homes[n], "status", "--json"))["system"] for n in homes}
        for n, m in (("a", "b"), ("b", "a")):
            ok(
                homes[n],
                "peer",
                "add",
                info[m]["device_id"],
                "--name",
                m,
                "--address",
                info[m]["listen_addresses"][0],
            )
        ok(homes["a"], "folder", "share", "default", info["b"]["device_id"])
        wait_for(
            lambda: "default" in ok(homes["b"], "folder", "pending"),
            timeout=30,
            what="the offer on b",
        )
        ok(homes["b"], "folder", "share", "default", info["a"]["device_id"])
        wait_for(
            lambda: "No pending folders" in ok(homes["b"], "folder", "pending"),
            what="the offer cleared",
        )
    finally:
        stop(procs)
