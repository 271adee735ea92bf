"""What an introducer's ClusterConfig changes in our config: a pure function.

A device we trust as an *introducer* tells us, in its ClusterConfig, which other devices
share each folder it shares with us. Like Syncthing, we then trust those devices too
(remembering who introduced them) and share the folder with them; when the introducer no
longer lists a device it introduced, we unshare that folder from it, and forget the
device once no folder is left, unless the introducer is set to skip removals. Devices the
user added are never removed this way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..config import Config, DeviceConfig
from ..endpoints import DYNAMIC_ADDRESS, DeviceAddress
from ..errors import ConfigError
from ..identity import DeviceID
from ..protocol.messages import ClusterConfig


def introduce(cfg: Config, introducer: DeviceID, cc: ClusterConfig, local: DeviceID) -> Config:
    """``cfg`` after taking in ``introducer``'s ClusterConfig (``cfg`` if nothing changes)."""
    who = cfg.device(introducer)
    if who is None or not who.introducer:
        return cfg
    new = cfg
    listed: dict[str, set[DeviceID]] = {}  # folder -> devices the introducer lists in it
    for folder in cc.folders:
        ours = new.folder(folder.id)
        if ours is None or introducer not in ours.devices:
            continue  # only folders we share with the introducer
        listed[folder.id] = set()
        for device in folder.devices:
            if device.id in (local.raw, introducer.raw):
                continue
            did = DeviceID(device.id)
            listed[folder.id].add(did)
            if new.device(did) is None:
                new = new.with_device(
                    DeviceConfig(
                        id=did,
                        name=device.name,
                        addresses=(*_explicit_addresses(device.addresses), DYNAMIC_ADDRESS),
                        introduced_by=introducer,
                    )
                )
            fc = new.folder(folder.id)
            assert fc is not None
            if did not in fc.devices:
                new = new.with_folder(replace(fc, devices=(*fc.devices, did)))
    if who.skip_introduction_removals:
        return new
    return _remove_unlisted(new, introducer, listed)


def _remove_unlisted(cfg: Config, introducer: DeviceID, listed: dict[str, set[DeviceID]]) -> Config:
    """Unshare folders from devices ``introducer`` introduced but no longer lists there;
    forget such a device once it shares no folder with us."""
    introduced = {d.id for d in cfg.devices if d.introduced_by == introducer}
    new = cfg
    for folder_id, devices in listed.items():
        fc = new.folder(folder_id)
        assert fc is not None
        gone = [d for d in fc.devices if d in introduced and d not in devices]
        if gone:
            new = new.with_folder(
                replace(fc, devices=tuple(d for d in fc.devices if d not in gone))
            )
    for did in introduced:
        if not any(did in f.devices for f in new.folders):
            new = new.without_device(did)
    return new


def _explicit_addresses(texts: Iterable[str]) -> tuple[DeviceAddress, ...]:
    """The addresses an introducer gives for a device, parsed as the config parses
    them, ``dynamic`` left out. One the config would refuse (Syncthing's ``quic://``,
    say) is left out too: saved, it would make config.toml fail to load."""
    out = []
    for text in texts:
        try:
            address = DeviceAddress.parse(text)
        except ConfigError:
            continue
        if not address.is_dynamic:
            out.append(address)
    return tuple(out)
