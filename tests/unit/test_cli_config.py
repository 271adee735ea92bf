import json

import pytest
from click.testing import CliRunner

from p2psync.cli import cli
from p2psync.config import load_config
from p2psync.identity import generate_identity
from p2psync.pending import PendingDevice, PendingFolder, PendingStore


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    result = CliRunner().invoke(
        cli, ["--home", str(h), "init", "--name", "alpha", "--no-default-folder"]
    )
    assert result.exit_code == 0, result.output
    return h


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_init_prints_id_and_next_steps(tmp_path) -> None:
    h = tmp_path / "h"
    r = CliRunner().invoke(
        cli, ["--home", str(h), "init", "--default-folder-path", str(tmp_path / "Sync")]
    )
    assert r.exit_code == 0
    assert "Device ID:" in r.output and "p2psync peer add" in r.output
    cfg = load_config(h)
    assert cfg.folders[0].id == "default"
    assert (h / "api.key").stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(cli, ["--home", str(h), "init"])
    assert again.exit_code == 2 and "already initialised" in again.output


def test_id_json(home) -> None:
    r = run(home, "id", "--json")
    assert r.exit_code == 0
    device_id = json.loads(r.output)["device_id"]
    assert run(home, "id").output.strip() == device_id


def test_peer_add_list_remove(home) -> None:
    other = generate_identity().device_id
    r = run(
        home,
        "peer",
        "add",
        str(other).lower(),
        "--name",
        "beta",
        "--address",
        "tcp://127.0.0.1:22002",
    )
    assert r.exit_code == 0, r.output
    listed = json.loads(run(home, "peer", "list", "--json").output)
    assert listed == [
        {
            "id": str(other),
            "name": "beta",
            "addresses": ["tcp://127.0.0.1:22002", "dynamic"],  # an address keeps dynamic
            "introducer": False,
            "paused": False,
            "max_send_kbps": 0,
            "max_recv_kbps": 0,
            "introduced_by": "",
            "skip_introduction_removals": False,
        }
    ]
    assert run(home, "peer", "remove", str(other)).exit_code == 0
    assert json.loads(run(home, "peer", "list", "--json").output) == []
    r = run(home, "peer", "remove", str(other))
    assert r.exit_code == 2 and "not configured" in r.output


def test_user_errors_are_messages_not_tracebacks(home) -> None:
    r = run(home, "peer", "add", "NOT-A-DEVICE")
    assert r.exit_code == 2
    assert r.output.startswith("error: device ID") and "Traceback" not in r.output
    own = run(home, "id").output.strip()
    assert run(home, "peer", "add", own).exit_code == 2
    r = run(home, "peer", "add", str(generate_identity().device_id), "--address", "udp://x:1")
    assert r.exit_code == 2 and "--address[0]" in r.output  # a bad argument


def test_folder_add_share_list_remove(home, tmp_path) -> None:
    other = str(generate_identity().device_id)
    assert run(home, "peer", "add", other).exit_code == 0
    path = tmp_path / "docs"
    r = run(home, "folder", "add", str(path), "--id", "docs", "--type", "sendonly")
    assert r.exit_code == 0, r.output
    assert path.is_dir()
    assert run(home, "folder", "share", "docs", other).exit_code == 0
    folders = json.loads(run(home, "folder", "list", "--json").output)
    assert folders[0]["id"] == "docs" and folders[0]["devices"] == [other]
    assert folders[0]["type"] == "sendonly"
    dup = run(home, "folder", "add", str(path))
    assert dup.exit_code == 2 and "already shared" in dup.output
    unknown = run(home, "folder", "share", "docs", str(generate_identity().device_id))
    assert unknown.exit_code == 2 and "not configured" in unknown.output
    # removing a device unshares it
    assert run(home, "peer", "remove", other).exit_code == 0
    assert json.loads(run(home, "folder", "list", "--json").output)[0]["devices"] == []
    assert run(home, "folder", "remove", "docs").exit_code == 0
    assert path.is_dir()


def test_folder_add_with_unknown_share_fails(home, tmp_path) -> None:
    r = run(
        home, "folder", "add", str(tmp_path / "x"), "--share", str(generate_identity().device_id)
    )
    assert r.exit_code == 2


def test_pending_lists_are_sanitised(home) -> None:
    store = PendingStore(home)
    dev = str(generate_identity().device_id)
    store.add_device(PendingDevice(dev, "evil\x1b[31mred", "tcp://127.0.0.1:1", 1.0))
    store.add_folder(PendingFolder("shared", "Shared\x07", dev, 2.0))
    out = run(home, "peer", "pending").output
    assert "\x1b" not in out and "\\x1b[31mred" in out
    assert json.loads(run(home, "peer", "pending", "--json").output)[0]["device_id"] == dev
    out = run(home, "folder", "pending").output
    assert "\x07" not in out and "shared" in out


def test_folder_accept(home, tmp_path) -> None:
    dev = str(generate_identity().device_id)
    assert run(home, "peer", "add", dev).exit_code == 0
    PendingStore(home).add_folder(PendingFolder("shared", "Shared", dev, 2.0))
    r = run(home, "folder", "accept", "shared", str(tmp_path / "shared"))
    assert r.exit_code == 0, r.output
    folder = load_config(home).folder("shared")
    assert folder is not None and [str(d) for d in folder.devices] == [dev]
    assert PendingStore(home).folders() == []
    assert run(home, "folder", "accept", "nothing").exit_code == 2


def test_commands_need_init(tmp_path) -> None:
    r = CliRunner().invoke(cli, ["--home", str(tmp_path / "none"), "peer", "list"])
    assert r.exit_code == 3 and "p2psync init" in r.output
