"""The introducer rule as a pure function: who is added, shared with, and removed."""

from __future__ import annotations

from p2psync.config import Config, DeviceConfig, FolderConfig
from p2psync.identity import generate_identity
from p2psync.protocol.messages import ClusterConfig, Folder, FolderDevice
from p2psync.sync.introductions import introduce

ME, INTRO, NEW, OTHER = (generate_identity().device_id for _ in range(4))


def cc(*folders: tuple[str, list]) -> ClusterConfig:
    return ClusterConfig(
        folders=tuple(
            Folder(id=fid, devices=tuple(FolderDevice(id=d.raw, **kw) for d, kw in devs))
            for fid, devs in folders
        )
    )


def base(introducer: bool = True, skip: bool = False) -> Config:
    return (
        Config(name="me")
        .with_device(
            DeviceConfig(id=INTRO, introducer=introducer, skip_introduction_removals=skip)
        )  # fmt: skip
        .with_folder(FolderConfig(id="team", path="/data/team", devices=(INTRO,)))
        .with_folder(FolderConfig(id="private", path="/data/private", devices=()))
    )


def offer(*extra: tuple) -> ClusterConfig:
    return cc(("team", [(ME, {}), (INTRO, {}), *extra]))


def test_a_device_the_introducer_shares_with_is_trusted_and_shared_with() -> None:
    new = introduce(base(), INTRO, offer((NEW, {"name": "nas", "addresses": ("tcp://h:1",)})), ME)
    dev = new.device(NEW)
    assert dev is not None and dev.name == "nas" and dev.introduced_by == INTRO
    assert [str(a) for a in dev.addresses] == ["tcp://h:1", "dynamic"] and not dev.introducer
    assert new.folder("team").devices == (INTRO, NEW)
    assert new.folder("private").devices == ()  # only folders shared with the introducer
    assert introduce(new, INTRO, offer((NEW, {})), ME) == new  # idempotent


def test_an_introduced_address_the_config_would_refuse_is_left_out(tmp_path) -> None:
    """Syncthing also announces quic:// addresses; saved, one would make config.toml
    fail to load, so only the addresses the config takes are kept."""
    from p2psync.config import load_config, save_config

    texts = ("quic://h:1", "dynamic", "tcp://h:1", "tcp://h")
    new = introduce(base(), INTRO, offer((NEW, {"addresses": texts})), ME)
    assert [str(a) for a in new.device(NEW).addresses] == ["tcp://h:1", "dynamic"]
    save_config(new, tmp_path)
    assert load_config(tmp_path) == new


def test_nothing_changes_unless_the_device_is_our_introducer() -> None:
    assert introduce(base(introducer=False), INTRO, offer((NEW, {})), ME) == base(False)
    assert introduce(base(), OTHER, offer((NEW, {})), ME) == base()
    # a folder we do not share with the introducer introduces nobody
    assert introduce(base(), INTRO, cc(("private", [(NEW, {})])), ME) == base()


def test_a_device_no_longer_listed_is_unshared_and_then_forgotten() -> None:
    introduced = introduce(base(), INTRO, offer((NEW, {})), ME)
    after = introduce(introduced, INTRO, offer(), ME)
    assert after.device(NEW) is None and after.folder("team").devices == (INTRO,)


def test_skip_removals_keeps_introduced_devices() -> None:
    introduced = introduce(base(skip=True), INTRO, offer((NEW, {})), ME)
    assert introduce(introduced, INTRO, offer(), ME) == introduced


def test_devices_the_user_added_are_never_removed_by_an_introducer() -> None:
    mine = base().with_device(DeviceConfig(id=OTHER))
    mine = mine.with_folder(FolderConfig(id="team", path="/data/team", devices=(INTRO, OTHER)))
    assert introduce(mine, INTRO, offer(), ME) == mine
