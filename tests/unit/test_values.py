"""Typed values parsed once: folder kinds and the ``dynamic`` device address text."""

import json

import pytest

from p2psync.config import (
    Config,
    FolderConfig,
    config_to_dict,
    load_config,
    parse_config,
    save_config,
)
from p2psync.errors import ConfigError
from p2psync.protocol.messages import FolderType
from p2psync.values import FOLDER_TYPES, FolderKind, is_dynamic


def test_folder_types_keep_their_config_text() -> None:
    assert FOLDER_TYPES == ("sendreceive", "sendonly", "receiveonly")
    assert FolderKind.named("sendonly") is FolderKind.SEND_ONLY
    assert FolderKind.named("SendOnly") is None  # spelled exactly, as before
    assert FolderKind.named("mirror") is None


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        (FolderKind.SEND_RECEIVE, FolderType.SEND_RECEIVE),
        (FolderKind.SEND_ONLY, FolderType.SEND_ONLY),
        (FolderKind.RECEIVE_ONLY, FolderType.RECEIVE_ONLY),
    ],
)
def test_folder_kind_maps_to_the_wire_type(kind: FolderKind, wire: FolderType) -> None:
    assert kind.wire is wire


def test_each_folder_kind_has_the_description_the_web_pages_show() -> None:
    assert [k.description for k in FolderKind] == [
        "send and receive",
        "send only",
        "receive only",
    ]


def test_a_folder_built_from_text_holds_the_typed_kind() -> None:
    folder = FolderConfig(id="a", path="/data/a", type="receiveonly")  # type: ignore[arg-type]
    assert folder.type is FolderKind.RECEIVE_ONLY
    assert FolderConfig(id="b", path="/data/b").type is FolderKind.SEND_RECEIVE


def test_folder_kind_is_written_as_the_same_text(tmp_path) -> None:
    cfg = Config().with_folder(FolderConfig(id="a", path="/data/a", type=FolderKind.SEND_ONLY))
    assert config_to_dict(cfg)["folders"][0]["type"] == "sendonly"
    assert json.dumps({"type": cfg.folders[0].type}) == '{"type": "sendonly"}'
    assert f"[{cfg.folders[0].type}]" == "[sendonly]"
    save_config(cfg, tmp_path)
    assert 'type = "sendonly"' in (tmp_path / "config.toml").read_text()
    assert load_config(tmp_path).folders[0].type is FolderKind.SEND_ONLY


def test_an_unknown_folder_type_is_refused_when_parsed() -> None:
    data = config_to_dict(Config().with_folder(FolderConfig(id="a", path="/data/a")))
    data["folders"][0]["type"] = "mirror"
    with pytest.raises(
        ConfigError, match=r"type: must be one of sendreceive, sendonly, receiveonly, got 'mirror'"
    ):
        parse_config(data)


def test_dynamic_is_spelled_exactly() -> None:
    assert is_dynamic("dynamic") and not is_dynamic("Dynamic") and not is_dynamic(" dynamic")
