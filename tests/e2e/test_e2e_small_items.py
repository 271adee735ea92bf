"""Issue 18.10, the small items a new user trips over: exit codes, the device ID typo
message, `peer add --address` keeping discovery, event names and the conflict event."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_daemon import cli_run, init_home, ok, wait_for
from test_e2e_reconnect import start, stop

from p2psync.config import load_config
from p2psync.identity import generate_identity


def test_bad_arguments_exit_2(tmp_path) -> None:
    home = tmp_path / "home"
    fresh = cli_run(tmp_path / "fresh", "init", "--listen", "nonsense")
    assert fresh.exit_code == 2 and "--listen[0]" in fresh.output
    init_home(home)
    other = str(generate_identity().device_id)
    for args in (
        ("peer", "add", other, "--address", "nonsense"),
        ("folder", "add", str(tmp_path / "d"), "--id", "bad id"),
        ("folder", "accept", "bad id"),
        ("peer", "add", "ABC"),
        ("peer", "add", other, "--no-dynamic"),
    ):
        r = cli_run(home, *args)
        assert r.exit_code == 2, (args, r.output)
    assert cli_run(tmp_path / "nowhere", "peer", "list").exit_code == 3  # no config: 3


def test_a_typo_names_the_group_the_user_sees(tmp_path) -> None:
    init_home(tmp_path)
    good = str(generate_identity().device_id)
    groups = good.split("-")
    last = groups[7]
    groups[7] = last[:-1] + ("A" if last[-1] != "A" else "B")  # the last check character
    r = cli_run(tmp_path, "peer", "add", "-".join(groups))
    assert r.exit_code == 2
    assert "at the end of group 8: a typo in group 7 or 8" in r.output


def test_peer_add_with_an_address_keeps_discovery(tmp_path) -> None:
    home = tmp_path / "home"
    init_home(home)
    one, two = (str(generate_identity().device_id) for _ in range(2))
    ok(home, "peer", "add", one, "--address", "tcp://127.0.0.1:22001")
    ok(home, "peer", "add", two, "--address", "tcp://127.0.0.1:22002", "--no-dynamic")
    cfg = load_config(home)
    by_id = {str(d.id): tuple(map(str, d.addresses)) for d in cfg.devices}
    assert by_id[one] == ("tcp://127.0.0.1:22001", "dynamic")
    assert by_id[two] == ("tcp://127.0.0.1:22002",)


def events(home: Path, *args: str) -> list[dict]:
    return json.loads(ok(home, "events", "--json", *args))


def test_conflicts_make_an_event_and_events_name_devices(tmp_path) -> None:
    homes = {n: tmp_path / n / "home" for n in ("alpha", "beta")}
    data = {n: tmp_path / n / "data" for n in homes}
    for n in homes:
        init_home(homes[n], n)
    procs = [start(homes[n]) for n in homes]
    try:
        info = {n: json.loads(ok(homes[n], "status", "--json"))["system"] for n in homes}
        ids = {n: info[n]["device_id"] for n in homes}
        for n, m in (("alpha", "beta"), ("beta", "alpha")):
            ok(
                homes[n],
                "peer",
                "add",
                ids[m],
                "--name",
                m,
                "--address",
                info[m]["listen_addresses"][0],
            )
        ok(homes["alpha"], "folder", "add", str(data["alpha"]), "--id", "f", "--share", ids["beta"])
        wait_for(
            lambda: "f " in ok(homes["beta"], "folder", "pending"), timeout=30, what="the offer"
        )
        ok(homes["beta"], "folder", "accept", "f", str(data["beta"]))
        (data["alpha"] / "x.txt").write_text("base\n")
        ok(homes["alpha"], "scan", "f")
        wait_for(lambda: (data["beta"] / "x.txt").exists(), timeout=30, what="x.txt on beta")

        ok(homes["alpha"], "peer", "pause", ids["beta"])
        wait_for(
            lambda: (
                not json.loads(ok(homes["beta"], "status", "--json"))["devices"][0]["connected"]
            ),
            what="the disconnection",
        )
        for n in homes:
            (data[n] / "x.txt").write_text(f"changed on {n}\n")
            ok(homes[n], "scan", "f")
        ok(homes["alpha"], "peer", "resume", ids["beta"])

        def conflict_events() -> list[dict]:
            return [e for n in homes for e in events(homes[n], "--types", "ConflictCreated")]

        made = wait_for(conflict_events, timeout=30, what="a ConflictCreated event")
        data_of = made[0]["data"]
        assert data_of["folder"] == "f" and data_of["item"] == "x.txt"
        assert ".sync-conflict-" in data_of["copy"] and data_of["device"] in ids.values()
        assert data_of["device_name"] in homes
        wait_for(
            lambda: any((data[n] / data_of["copy"]).exists() for n in homes),
            what="the conflict copy on disk",
        )

        human = ok(homes["alpha"], "events")
        assert f"device=beta ({ids['beta'][:7]})" in human
        assert "ConflictCreated" in ok(homes["alpha"], "events") + ok(homes["beta"], "events")
    finally:
        stop(procs)
