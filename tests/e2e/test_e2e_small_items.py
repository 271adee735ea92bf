"""Issue 18.10, the small items a new user trips over: exit codes, the device ID typo
message, `peer add --address` keeping discovery, event names and the conflict event."""

from __future__ import annotations

from test_cli_daemon import cli_run, init_home, ok

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
    by_id = {d.id: d.addresses for d in cfg.devices}
    assert by_id[one] == ("tcp://127.0.0.1:22001", "dynamic")
    assert by_id[two] == ("tcp://127.0.0.1:22002",)
