"""Every setting a user had to hand-edit config.toml for has a command, applied by the
running daemon at once and refused the way the file would be (issue 18.8)."""

from __future__ import annotations

import json

import two_nodes
from test_cli_daemon import cli_run, init_home, ok, wait_for
from two_nodes import folder_of, share, status, text_of

from p2psync.config import load_config

pair = two_nodes.pair  # the fixture


def test_settings_change_the_running_daemons(pair) -> None:
    nodes = pair()
    (home_a, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    data_a.mkdir(parents=True)
    (data_a / "doc.txt").write_text("v1\n")
    share(nodes, "docs")
    wait_for(lambda: (data_b / "doc.txt").exists(), what="doc.txt on b")

    # versioning, set on b while it runs: a's next edit archives b's old copy
    ok(home_b, "config", "set", "--folder", "docs", "versioning.type", "simple")
    ok(home_b, "config", "set", "--folder", "docs", "versioning.keep", "3")
    assert ok(home_b, "config", "show", "--folder", "docs", "versioning.keep").strip() == "3"
    (data_a / "doc.txt").write_text("v2\n")
    ok(home_a, "scan", "docs")
    wait_for(lambda: text_of(data_b / "doc.txt") == "v2\n", what="v2 on b")
    versions = json.loads(ok(home_b, "versions", "list", "docs", "--json"))
    assert [v["name"] for v in versions] == ["doc.txt"]

    # the folder type and the rescan interval apply without a restart: with the watcher
    # off, a 1 s rescan finds a local change, which receive-only keeps to itself
    ok(home_b, "config", "set", "--folder", "docs", "type", "receiveonly")
    ok(home_b, "config", "set", "--folder", "docs", "watcher", "false")
    ok(home_b, "config", "set", "--folder", "docs", "watcher_delay_ms", "250")
    ok(home_b, "config", "set", "--folder", "docs", "rescan_interval_s", "1")
    (data_b / "local.txt").write_text("only on b\n")
    wait_for(lambda: folder_of(home_b, "docs")["local_changes"] == 1, what="the rescan on b")
    assert not (data_a / "local.txt").exists()

    # a value the file would refuse is refused with the file's message and exit code
    bad = cli_run(home_b, "config", "set", "--folder", "docs", "versioning.type", "weekly")
    assert bad.exit_code == 3
    assert "folder 'docs': versioning.type: must be one of none, trashcan" in bad.output
    assert load_config(home_b).folder("docs").versioning.type == "simple"
    assert cli_run(home_b, "config", "set", "--", "max_recv_kbps", "-5").exit_code == 3
    assert cli_run(home_b, "config", "set", "--folder", "docs", "colour", "red").exit_code == 2

    # rate limits and discovery servers
    ok(home_a, "config", "set", "max_send_kbps", "800")
    ok(home_a, "config", "set", "--device", "b", "max_recv_kbps", "400")
    out = ok(home_a, "config", "add", "discovery.global_servers", "https://127.0.0.1:9/")
    assert load_config(home_a).discovery.global_servers == ("https://127.0.0.1:9/",)
    assert "Added https://127.0.0.1:9/ to discovery.global_servers" in out
    cfg = load_config(home_a)
    assert cfg.max_send_kbps == 800 and cfg.devices[0].max_recv_kbps == 400

    # removing an address, unsharing from one device
    address, dynamic = map(str, load_config(home_a).devices[0].addresses)  # keeps dynamic
    assert dynamic == "dynamic"
    ok(home_a, "peer", "remove-address", "b", address)
    assert [str(a) for a in load_config(home_a).devices[0].addresses] == ["dynamic"]
    ok(home_a, "folder", "unshare", "docs", "b")
    assert folder_of(home_a, "docs")["devices"] == []
    b_id = status(home_b)["system"]["device_id"]
    gone = cli_run(home_a, "folder", "unshare", "docs", b_id)
    assert gone.exit_code == 2 and "is not in devices" in gone.output


def test_settings_without_a_daemon_edit_the_file(tmp_path) -> None:
    home = tmp_path / "home"
    init_home(home)
    ok(home, "folder", "add", str(tmp_path / "data"), "--id", "d")
    ok(home, "config", "set", "--folder", "d", "versioning.type", "trashcan")
    ok(home, "config", "set", "discovery.mdns", "on")
    assert load_config(home).folder("d").versioning.type == "trashcan"
    assert load_config(home).discovery.mdns is True
    shown = json.loads(ok(home, "config", "show", "--folder", "d", "--json"))
    assert shown["versioning"]["type"] == "trashcan" and shown["id"] == "d"
    assert cli_run(home, "config", "set", "--folder", "d", "type", "mirror").exit_code == 3
