"""Issue 25.3: config.toml carries a layout version; a newer one is refused untouched."""

from __future__ import annotations

import tomllib

import pytest

from p2psync.config import CONFIG_VERSION, Config, load_config, save_config
from p2psync.errors import ConfigError


def test_a_config_from_before_versions_loads_and_is_saved_with_one(tmp_path) -> None:
    (tmp_path / "config.toml").write_text('name = "alpha"\n')
    cfg = load_config(tmp_path)
    assert cfg.name == "alpha"
    save_config(cfg, tmp_path)
    text = (tmp_path / "config.toml").read_text()
    assert text.startswith(f"version = {CONFIG_VERSION}\n")
    assert load_config(tmp_path) == cfg


def test_the_saved_version_round_trips(tmp_path) -> None:
    save_config(Config(name="beta"), tmp_path)
    assert tomllib.loads((tmp_path / "config.toml").read_text())["version"] == CONFIG_VERSION
    assert load_config(tmp_path).name == "beta"


def test_a_newer_config_is_refused_and_left_as_it_is(tmp_path) -> None:
    path = tmp_path / "config.toml"
    # a newer layout may hold settings this version has never heard of
    path.write_text(f'version = {CONFIG_VERSION + 1}\nname = "alpha"\n[future]\nx = 1\n')
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="written by a newer p2psync") as err:
        load_config(tmp_path)
    assert "line 1" in str(err.value) and "nothing was changed" in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("bad", ["0", "-1", '"1"', "true", "1.5"])
def test_a_nonsense_version_is_refused(tmp_path, bad: str) -> None:
    (tmp_path / "config.toml").write_text(f'version = {bad}\nname = "alpha"\n')
    with pytest.raises(ConfigError, match="version"):
        load_config(tmp_path)
