"""Accepting an offer of a folder ID that exists here merges into it (issue 18.10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2psync.api import edits
from p2psync.config import Config, DeviceConfig, FolderConfig
from p2psync.errors import UsageError
from p2psync.identity import generate_identity
from p2psync.pending import PendingFolder


def test_an_offer_of_an_existing_folder_is_accepted_into_it() -> None:
    other_id = generate_identity().device_id
    other = str(other_id)
    cfg = (
        Config(name="n")
        .with_device(DeviceConfig(id=other_id))
        .with_folder(FolderConfig(id="default", path="/data/Sync"))
    )
    offers = [PendingFolder("default", "Default Folder", other, 1.0)]
    merged = edits.accept_folder(cfg, offers, "default", edits.default_accept_path(cfg, "default"))
    assert merged.path == "/data/Sync" and merged.devices == (other_id,)
    same = edits.accept_folder(cfg, offers, "default", Path("/data/Sync"))
    assert same == merged
    with pytest.raises(UsageError, match="already exists here, at /data/Sync; accept the offer"):
        edits.accept_folder(cfg, offers, "default", Path("/elsewhere"))
