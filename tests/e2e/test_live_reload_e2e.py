"""Changing listen addresses and discovery takes effect in the running daemon (issue
18.6): the listener is rebound without dropping connections, discovery restarts, and
what does need a restart (the API address) is named in the log and the answers."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import two_nodes
from test_cli_daemon import ok, wait_for
from two_nodes import status

from p2psync.config import load_config, save_config

pair = two_nodes.pair  # the fixture


def accepts(url: str) -> bool:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def log_of(home: Path) -> str:
    return (home / "p2psync.log").read_text()


def test_listen_and_discovery_apply_live_and_the_rest_is_named(pair) -> None:
    nodes = pair()
    (home_a, _), (home_b, _) = nodes["a"], nodes["b"]
    wait_for(lambda: all(d["connected"] for d in status(home_a)["devices"]), what="a-b up")
    [old] = status(home_a)["system"]["listen_addresses"]

    out = ok(home_a, "config", "set", "listen", "tcp://127.0.0.2:0")
    assert "restart" not in out
    [new] = status(home_a)["system"]["listen_addresses"]
    assert new.startswith("tcp://127.0.0.2:") and accepts(new) and not accepts(old)
    # the connection accepted or dialled before the change is still up
    assert all(d["connected"] for d in status(home_a)["devices"])

    # discovery services start and stop with their settings
    assert status(home_a)["system"]["mdns"] is False
    assert "restart" not in ok(home_a, "config", "set", "discovery.mdns", "true")
    assert status(home_a)["system"]["mdns"] is True
    ok(home_a, "config", "add", "discovery.global_servers", "https://127.0.0.1:9/")
    assert status(home_a)["system"]["global_discovery"] is True
    ok(home_a, "config", "set", "discovery.mdns", "false")
    ok(home_a, "config", "remove", "discovery.global_servers", "https://127.0.0.1:9/")
    system = status(home_a)["system"]
    assert system["mdns"] is False and system["global_discovery"] is False

    # a hand edit of config.toml: listen applies, the API address is named as waiting
    save_config(replace(load_config(home_b), listen=("tcp://127.0.0.3:0",)), home_b)
    wait_for(
        lambda: status(home_b)["system"]["listen_addresses"][0].startswith("tcp://127.0.0.3:"),
        what="b listening on 127.0.0.3",
    )
    wait_for(
        lambda: "configuration applied (all of it, no restart needed)" in log_of(home_b),
        what="the reload's log line",
    )
    save_config(replace(load_config(home_b), api="127.0.0.1:1"), home_b)
    wait_for(
        lambda: (
            "configuration applied except api, which take(s) effect after a restart"
            in log_of(home_b)
        ),
        what="the log naming api",
    )
    assert "not applied to the running daemon: api" in ok(home_b, "config", "reload")

    # an address that cannot be bound (not on this machine) leaves the old one serving
    [current] = status(home_b)["system"]["listen_addresses"]
    out = ok(home_b, "config", "set", "listen", "tcp://192.0.2.1:0")
    assert "not applied to the running daemon: listen, api" in out
    assert status(home_b)["system"]["listen_addresses"] == [current] and accepts(current)
    assert "cannot listen on tcp://192.0.2.1:0" in log_of(home_b)
