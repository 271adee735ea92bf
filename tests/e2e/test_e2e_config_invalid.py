"""Issue 18.5: while config.toml is invalid, reads keep working from the daemon's last
good config, writes are refused naming the error, and the user's edits are never lost."""

from __future__ import annotations

import json

from test_cli_daemon import cli_run, init_home, ok, wait_for
from test_e2e_reconnect import start, stop

from p2psync.identity import generate_identity


def test_an_invalid_config_keeps_reads_working_and_refuses_writes(tmp_path) -> None:
    home = tmp_path / "home"
    init_home(home, "alpha")
    proc = start(home)
    try:
        other = str(generate_identity().device_id)
        path = home / "config.toml"
        good = path.read_text()
        # the user renames the device by hand and leaves a typo (an unterminated string)
        broken = good.replace('name = "alpha"', 'name = "renamed by hand')
        assert broken != good
        path.write_text(broken)
        line = 1 + broken.splitlines().index('name = "renamed by hand')

        system = wait_for(
            lambda: (s := json.loads(ok(home, "status", "--json"))["system"])["config_error"] and s,
            what="the daemon noticing the invalid file",
        )
        assert f"line {line}" in system["config_error"] and system["name"] == "alpha"
        assert "config.toml is invalid" in ok(home, "status")
        listed = cli_run(home, "peer", "list", "--json")
        assert listed.exit_code == 0 and json.loads(listed.stdout) == []
        folders = cli_run(home, "folder", "list")
        assert folders.exit_code == 0 and "last good config" in folders.stderr

        # a write through the daemon is refused and names the error; the file is untouched
        refused = cli_run(home, "peer", "add", other, "--name", "bob")
        assert refused.exit_code == 3, refused.output
        assert "not saved" in refused.output and f"line {line}" in refused.output
        assert path.read_text() == broken

        # the user fixes the typo: the daemon picks the file up, with the user's edit
        fixed = good.replace('name = "alpha"', 'name = "renamed by hand"')
        path.write_text(fixed)
        wait_for(
            lambda: json.loads(ok(home, "status", "--json"))["system"]["name"] == "renamed by hand",
            what="the fixed file applied",
        )
        assert json.loads(ok(home, "status", "--json"))["system"]["config_error"] == ""
        ok(home, "peer", "add", other, "--name", "bob")
        text = path.read_text()
        assert 'name = "renamed by hand"' in text and other in text
        log = (home / "p2psync.log").read_text()
        assert log.count("not applying the edited config") == 1
    finally:
        stop([proc])
