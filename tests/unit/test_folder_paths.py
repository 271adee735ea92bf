"""Folder paths never nest (issue 18.1/18.2): the pure checks behind add, accept and load."""

from pathlib import Path

import pytest

from p2psync.api import edits
from p2psync.config import Config, FolderConfig
from p2psync.errors import UsageError
from p2psync.folder_paths import blocked_folders, folder_path_problem


def cfg_with(*folders: tuple[str, str]) -> Config:
    cfg = Config(name="n")
    for folder_id, path in folders:
        cfg = cfg.with_folder(FolderConfig(id=folder_id, path=path))
    return cfg


def test_folder_path_problem() -> None:
    cfg = cfg_with(("default", "/u/Sync"))
    home = Path("/u/.local/share/p2psync")
    assert folder_path_problem(cfg, "/u/acme", home) is None
    assert folder_path_problem(cfg, "/u/Sync2", home) is None  # a prefix, not a parent
    assert "already shared" in folder_path_problem(cfg, "/u/Sync/", home)
    assert "inside folder 'default'" in folder_path_problem(cfg, "/u/x/../Sync/a", home)
    assert "contains folder 'default'" in folder_path_problem(cfg, "/", None)
    assert "contains this node's home" in folder_path_problem(cfg, "/u/.local", home)
    assert folder_path_problem(cfg, "/u/Sync/a", home, folder_id="default") is None


def test_blocked_folders_are_the_outer_ones() -> None:
    home = Path("/u/.p2p")
    cfg = cfg_with(("default", "/u/Sync"), ("acme", "/u/Sync/acme"), ("all", "/u"))
    blocked = blocked_folders(cfg, home)
    assert set(blocked) == {"default", "all"}
    assert "contains folder 'acme'" in blocked["default"]
    assert "home" in blocked["all"]
    same = blocked_folders(cfg_with(("a", "/d"), ("b", "/d/")), None)
    assert set(same) == {"a", "b"} and "same path" in same["a"]


def test_default_accept_path_is_a_free_sibling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/u")
    cfg = cfg_with(("default", "/u/Sync"))
    assert edits.default_accept_path(cfg, "acme") == Path("/u/acme")
    cfg = cfg.with_folder(FolderConfig(id="mine", path="/u/acme"))
    assert edits.default_accept_path(cfg, "acme") == Path("/u/acme-2")
    assert edits.default_accept_path(cfg, "Sync") == Path("/u/Sync-2")
    with pytest.raises(UsageError, match="give a PATH"):
        edits.default_accept_path(cfg_with(("home", "/u")), "acme")
