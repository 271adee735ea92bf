"""Settings by key (p2psync/settings.py): the same validation as loading config.toml."""

from __future__ import annotations

import pytest

from p2psync.config import Config, DeviceConfig, FolderConfig, load_config, save_config
from p2psync.errors import ConfigError, NotFoundError, UsageError
from p2psync.identity import generate_identity
from p2psync.settings import Scope, change_settings, coerce, get_setting, settings_of

B_ID, C_ID = generate_identity().device_id, generate_identity().device_id
B, C = str(B_ID), str(C_ID)


def config() -> Config:
    return Config(
        name="a",
        devices=(
            DeviceConfig(id=B_ID, name="b", addresses=("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")),
            DeviceConfig(id=C_ID, name="c"),
        ),
        folders=(FolderConfig(id="docs", path="/data/docs", devices=(B_ID, C_ID)),),
    )


def test_every_kind_of_setting_is_changed_and_read_back() -> None:
    docs, dev_b = Scope("folder", "docs"), Scope("device", B)
    cfg = change_settings(
        config(),
        docs,
        set_values={
            "versioning.type": "simple",
            "versioning.keep": 3,
            "type": "receiveonly",
            "rescan_interval_s": 60,
            "watcher_delay_ms": 500,
        },
    )
    cfg = change_settings(cfg, Scope(), set_values={"max_send_kbps": 100, "max_recv_kbps": 50})
    cfg = change_settings(
        cfg, Scope(), add={"discovery.global_servers": ["https://disco.example:8443/"]}
    )
    cfg = change_settings(cfg, docs, remove={"devices": [C.lower()]})  # unshare from one device
    cfg = change_settings(cfg, dev_b, remove={"addresses": ["tcp://127.0.0.1:1"]})
    f = cfg.folder("docs")
    assert f is not None and f.type == "receiveonly" and f.devices == (B_ID,)
    assert (f.versioning.type, f.versioning.keep, f.rescan_interval_s, f.watcher_delay_ms) == (
        "simple",
        3,
        60,
        500,
    )
    assert (cfg.max_send_kbps, cfg.max_recv_kbps) == (100, 50)
    assert cfg.discovery.global_servers == ("https://disco.example:8443/",)
    assert get_setting(cfg, dev_b, "addresses") == ["tcp://127.0.0.1:2"]
    assert get_setting(cfg, docs, "versioning.type") == "simple"
    assert "devices" not in settings_of(cfg, Scope()) and settings_of(cfg, docs)["id"] == "docs"
    # removing the last address leaves the device findable
    cfg = change_settings(cfg, dev_b, remove={"addresses": ["tcp://127.0.0.1:2"]})
    assert get_setting(cfg, dev_b, "addresses") == ["dynamic"]


def test_a_value_the_file_refuses_is_refused_with_the_same_message(tmp_path) -> None:
    docs = Scope("folder", "docs")
    with pytest.raises(ConfigError) as by_setting:
        change_settings(config(), docs, set_values={"versioning.type": "weekly"})
    save_config(config(), tmp_path)
    text = (tmp_path / "config.toml").read_text().replace('type = "none"', 'type = "weekly"')
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as by_file:
        load_config(tmp_path)
    reason = str(by_file.value).split("folders[0].versioning.type: ")[1]
    assert str(by_setting.value) == f"folder 'docs': versioning.type: {reason}"
    for bad in (
        {"rescan_interval_s": -1},
        {"watcher_delay_ms": "soon"},
        {"type": "mirror"},
        {"max_conflicts": True},
    ):
        with pytest.raises(ConfigError):
            change_settings(config(), docs, set_values=bad)
    with pytest.raises(ConfigError, match=r"global_servers\[0\]"):
        change_settings(config(), Scope(), add={"discovery.global_servers": ["ftp://x"]})
    with pytest.raises(ConfigError, match=r"addresses\[2\]"):
        change_settings(config(), Scope("device", B), add={"addresses": ["udp://h:1"]})


def test_unknown_fixed_and_missing_things_are_named() -> None:
    docs = Scope("folder", "docs")
    with pytest.raises(UsageError, match="unknown setting"):
        change_settings(config(), docs, set_values={"versioning.color": "red"})
    with pytest.raises(UsageError, match="cannot be changed"):
        change_settings(config(), docs, set_values={"path": "/elsewhere"})
    with pytest.raises(UsageError, match="cannot be changed"):
        change_settings(config(), Scope(), set_values={"folders": []})
    with pytest.raises(NotFoundError, match="folder 'nope'"):
        change_settings(config(), Scope("folder", "nope"), set_values={"paused": True})
    with pytest.raises(NotFoundError, match="is not in devices"):
        change_settings(config(), docs, remove={"devices": [str(generate_identity().device_id)]})
    with pytest.raises(NotFoundError, match="not configured"):
        change_settings(config(), docs, add={"devices": [str(generate_identity().device_id)]})
    with pytest.raises(UsageError, match="not a list"):
        change_settings(config(), docs, add={"type": ["x"]})


def test_command_line_values_take_the_settings_type() -> None:
    assert coerce(True, "watcher", ["off"]) is False
    assert coerce(5, "keep", ["7"]) == 7
    assert coerce(0.5, "share", ["0.25"]) == 0.25
    assert coerce([], "global_servers", ["u1", "u2"]) == ["u1", "u2"]
    assert coerce("none", "versioning.type", ["simple"]) == "simple"
    for current, raw in ((1, ["x"]), (True, ["maybe"]), ({}, ["x"]), ("a", ["b", "c"])):
        with pytest.raises(UsageError):
            coerce(current, "key", raw)
