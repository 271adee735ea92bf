"""Typed, validated TOML configuration stored in the node home.

Loading never changes the file; saving is atomic (temp file + fsync + rename). Every
validation error names the offending key (``folders[1].type``) and what is wrong.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from .config_lines import line_of
from .endpoints import DYNAMIC_ADDRESS, DeviceAddress, ListenAddress
from .errors import ConfigError, DeviceIDError, UsageError
from .identity import DeviceID
from .selection import normalize as normalize_selection
from .values import FOLDER_TYPES, FolderKind

CONFIG_FILE = "config.toml"
DEFAULT_LISTEN_PORT = 22001  # Syncthing uses 22000
DEFAULT_LISTEN = f"tcp://0.0.0.0:{DEFAULT_LISTEN_PORT}"
DEFAULT_API_PORT = 8385  # Syncthing's GUI uses 8384
DEFAULT_DISCOVERY_PORT = 22027  # Syncthing's local discovery uses 21027
VERSIONING_TYPES = ("none", "trashcan", "simple", "staggered")
_FOLDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_HOME = "P2PSYNC_HOME"
ENV_MDNS_INTERFACES = "P2PSYNC_MDNS_INTERFACES"


def default_home() -> Path:
    """``$P2PSYNC_HOME`` or the platform's per-user data directory."""
    env = os.environ.get(_ENV_HOME)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("p2psync", appauthor=False))


@dataclass(frozen=True)
class VersioningConfig:
    type: str = "none"
    keep: int = 5  # simple: versions to keep per file
    cleanout_days: int = 0  # trashcan: days to keep (0 = forever)
    max_age_days: int = 365  # staggered: oldest version kept


@dataclass(frozen=True)
class FolderConfig:
    id: str
    path: str
    label: str = ""
    type: FolderKind = FolderKind.SEND_RECEIVE
    devices: tuple[DeviceID, ...] = ()
    rescan_interval_s: int = 3600
    watcher: bool = True
    watcher_delay_ms: int = 100
    ignore_permissions: bool = False
    paused: bool = False
    max_conflicts: int = 10
    mass_delete_share: float = 0.5
    mass_delete_min_deletes: int = 5
    history_days: int = 90  # the change log keeps entries this long (0: no age limit)
    history_max_entries: int = 1_000_000  # ... and at most this many (0: no count limit)
    versioning: VersioningConfig = field(default_factory=VersioningConfig)
    # selective sync (selection.py): the directories this device keeps; () = everything
    selected: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Parsed once: a folder built from a type's text (tests, older callers) holds the
        # typed value; text that names no type is left for the validation to refuse.
        if not isinstance(self.type, FolderKind):
            kind = FolderKind.named(self.type)
            if kind is not None:
                object.__setattr__(self, "type", kind)

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).expanduser()


@dataclass(frozen=True)
class DeviceConfig:
    id: DeviceID
    name: str = ""
    addresses: tuple[DeviceAddress, ...] = (DYNAMIC_ADDRESS,)
    introducer: bool = False
    paused: bool = False
    max_send_kbps: int = 0
    max_recv_kbps: int = 0
    # Set on a device an introducer added: removed again when the introducer stops
    # sharing with it (unless skip_introduction_removals is set on the introducer).
    introduced_by: DeviceID | None = None  # written as "" when None
    skip_introduction_removals: bool = False

    def __post_init__(self) -> None:
        # Parsed once: a device built from address texts (tests, older callers) holds
        # DeviceAddress values; ConfigError for a text that is no address.
        if not all(isinstance(a, DeviceAddress) for a in self.addresses):
            parsed = tuple(
                a if isinstance(a, DeviceAddress) else DeviceAddress.parse(a)
                for a in self.addresses
            )
            object.__setattr__(self, "addresses", parsed)


@dataclass(frozen=True)
class DiscoveryConfig:
    mdns: bool = True
    mdns_interfaces: tuple[str, ...] = ()  # empty: all interfaces
    global_servers: tuple[str, ...] = ()
    # Syncthing's local discovery v4 (UDP broadcasts on 21027), on the mDNS interfaces.
    syncthing_local: bool = False


@dataclass(frozen=True)
class Config:
    name: str = field(default_factory=socket.gethostname)
    listen: tuple[ListenAddress, ...] = (ListenAddress.parse(DEFAULT_LISTEN),)
    api: str = f"127.0.0.1:{DEFAULT_API_PORT}"
    max_send_kbps: int = 0
    max_recv_kbps: int = 0
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    devices: tuple[DeviceConfig, ...] = ()
    folders: tuple[FolderConfig, ...] = ()
    # Syncthing relays (relay://host:port/?id=RELAY-ID) to join, and the rate limits
    # of relayed connections (on top of the global and per-device ones).
    relays: tuple[str, ...] = ()
    relay_max_send_kbps: int = 0
    relay_max_recv_kbps: int = 0

    def __post_init__(self) -> None:
        # Parsed once: a config built from listen texts (tests, the demo) holds
        # ListenAddress values; ConfigError for a text that is no listen address.
        if not all(isinstance(a, ListenAddress) for a in self.listen):
            parsed = tuple(
                a if isinstance(a, ListenAddress) else ListenAddress.parse(a) for a in self.listen
            )
            object.__setattr__(self, "listen", parsed)

    # ---- queries -------------------------------------------------------------------
    def device(self, device_id: DeviceID) -> DeviceConfig | None:
        for d in self.devices:
            if d.id == device_id:
                return d
        return None

    def folder(self, folder_id: str) -> FolderConfig | None:
        for f in self.folders:
            if f.id == folder_id:
                return f
        return None

    def effective_mdns_interfaces(self) -> tuple[str, ...]:
        """``P2PSYNC_MDNS_INTERFACES`` overrides the config (empty means all interfaces)."""
        env = os.environ.get(ENV_MDNS_INTERFACES)
        if env is not None and env.strip():
            return tuple(a.strip() for a in env.split(",") if a.strip())
        return self.discovery.mdns_interfaces

    # ---- edits (return a new Config) -----------------------------------------------
    def with_device(self, device: DeviceConfig) -> Config:
        others = tuple(d for d in self.devices if d.id != device.id)
        return replace(self, devices=others + (device,))

    def without_device(self, device_id: DeviceID) -> Config:
        folders = tuple(
            replace(f, devices=tuple(d for d in f.devices if d != device_id)) for f in self.folders
        )
        devices = tuple(d for d in self.devices if d.id != device_id)
        return replace(self, devices=devices, folders=folders)

    def with_folder(self, folder: FolderConfig) -> Config:
        others = tuple(f for f in self.folders if f.id != folder.id)
        return replace(self, folders=others + (folder,))

    def without_folder(self, folder_id: str) -> Config:
        return replace(self, folders=tuple(f for f in self.folders if f.id != folder_id))


# ---- parsing and validation ------------------------------------------------------------


class _Reader:
    """Pulls typed values out of a TOML table, naming the key path in every error."""

    def __init__(self, table: dict[str, Any], path: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{path or 'config'}: expected a table")
        self.table = table
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(name)
        if name not in self.table:
            return default
        value = self.table[name]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise ConfigError(f"{self.key(name)}: expected {expected}, got {value!r}")
        return value

    def str_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(name, list, None)
        if value is None:
            return default
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{self.key(name)}[{i}]: expected a string, got {item!r}")
        return tuple(value)

    def non_negative(self, name: str, default: int) -> int:
        value = self.get(name, int, default)
        if value < 0:
            raise ConfigError(f"{self.key(name)}: must be >= 0, got {value}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown setting")


@contextmanager
def argument_errors() -> Iterator[None]:
    """Validating a user's argument (a CLI option, an API body) rather than the file: a
    ConfigError becomes a UsageError (exit code 2, HTTP 400), as docs/cli.md says."""
    try:
        yield
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def parse_listen_address(text: str, where: str) -> ListenAddress:
    """A listen address, ``tcp://HOST:PORT``, parsed once; the ConfigError names
    ``where``."""
    try:
        return ListenAddress.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def validate_relay_url(url: str, where: str) -> str:
    from .protocol.relay import parse_relay_url

    try:
        parse_relay_url(url)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return url


def parse_device_address(text: str, where: str) -> DeviceAddress:
    """A device address: ``dynamic``, ``tcp://HOST:PORT`` or a relay URL, parsed once;
    the ConfigError names ``where``."""
    try:
        return DeviceAddress.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def validate_host_port(value: str, where: str) -> str:
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value)
    if not m or not 0 <= int(m.group(2)) <= 65535:
        raise ConfigError(f"{where}: {value!r} is not HOST:PORT")
    return value


def validate_folder_id(folder_id: str, where: str = "folder id") -> str:
    if not _FOLDER_ID_RE.fullmatch(folder_id):
        raise ConfigError(
            f"{where}: {folder_id!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(not starting with a punctuation mark)"
        )
    return folder_id


def _parse_device(table: dict[str, Any], where: str) -> DeviceConfig:
    r = _Reader(table, where)
    raw_id = r.get("id", str, None)
    if raw_id is None:
        raise ConfigError(f"{where}.id: missing")
    device_id = _device_id(raw_id, f"{where}.id")
    addresses = tuple(
        parse_device_address(a, f"{where}.addresses[{i}]")
        for i, a in enumerate(r.str_list("addresses", (DYNAMIC_ADDRESS.text,)))
    )
    dev = DeviceConfig(
        id=device_id,
        name=r.get("name", str, ""),
        addresses=addresses,
        introducer=r.get("introducer", bool, False),
        paused=r.get("paused", bool, False),
        max_send_kbps=r.non_negative("max_send_kbps", 0),
        max_recv_kbps=r.non_negative("max_recv_kbps", 0),
        introduced_by=_optional_device_id(
            r.get("introduced_by", str, ""), f"{where}.introduced_by"
        ),
        skip_introduction_removals=r.get("skip_introduction_removals", bool, False),
    )
    r.finish()
    return dev


def _device_id(text: str, where: str) -> DeviceID:
    """A device ID written in config.toml: parsed here, once (written back canonical)."""
    try:
        return DeviceID.parse(text)
    except DeviceIDError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _optional_device_id(text: str, where: str) -> DeviceID | None:
    """``text`` as a device ID, or None for "" (none)."""
    return _device_id(text, where) if text else None


def _parse_versioning(table: dict[str, Any], where: str) -> VersioningConfig:
    r = _Reader(table, where)
    kind = r.get("type", str, "none")
    if kind not in VERSIONING_TYPES:
        raise ConfigError(
            f"{where}.type: must be one of {', '.join(VERSIONING_TYPES)}, got {kind!r}"
        )
    v = VersioningConfig(
        type=kind,
        keep=r.non_negative("keep", 5),
        cleanout_days=r.non_negative("cleanout_days", 0),
        max_age_days=r.non_negative("max_age_days", 365),
    )
    r.finish()
    return v


def _parse_folder(table: dict[str, Any], where: str) -> FolderConfig:
    r = _Reader(table, where)
    folder_id = r.get("id", str, None)
    if folder_id is None:
        raise ConfigError(f"{where}.id: missing")
    validate_folder_id(folder_id, f"{where}.id")
    path = r.get("path", str, None)
    if not path:
        raise ConfigError(f"{where}.path: missing")
    type_text = r.get("type", str, FolderKind.SEND_RECEIVE.value)
    kind = FolderKind.named(type_text)
    if kind is None:
        raise ConfigError(
            f"{where}.type: must be one of {', '.join(FOLDER_TYPES)}, got {type_text!r}"
        )
    devices = [
        _device_id(d, f"{where}.devices[{i}]") for i, d in enumerate(r.str_list("devices", ()))
    ]
    share = r.get("mass_delete_share", (float, int), 0.5)
    if not 0 < share <= 1:
        raise ConfigError(f"{where}.mass_delete_share: must be in (0, 1], got {share}")
    max_conflicts = r.get("max_conflicts", int, 10)
    if max_conflicts < -1:
        raise ConfigError(f"{where}.max_conflicts: must be -1 (unlimited) or >= 0")
    interval = r.get("rescan_interval_s", int, 3600)
    if interval < 0:
        raise ConfigError(f"{where}.rescan_interval_s: must be >= 0 (0 disables), got {interval}")
    # Older configs have mass_delete_min_files (the guard then watched only folders of at
    # least that many files, so small ones could lose most of them): read, then dropped.
    r.get("mass_delete_min_files", int, 0)
    folder = FolderConfig(
        id=folder_id,
        path=path,
        label=r.get("label", str, ""),
        type=kind,
        devices=tuple(devices),
        rescan_interval_s=interval,
        watcher=r.get("watcher", bool, True),
        watcher_delay_ms=r.non_negative("watcher_delay_ms", 100),
        ignore_permissions=r.get("ignore_permissions", bool, False),
        paused=r.get("paused", bool, False),
        max_conflicts=max_conflicts,
        mass_delete_share=float(share),
        mass_delete_min_deletes=r.non_negative("mass_delete_min_deletes", 5),
        history_days=r.non_negative("history_days", 90),
        history_max_entries=r.non_negative("history_max_entries", 1_000_000),
        versioning=_parse_versioning(r.get("versioning", dict, {}), f"{where}.versioning"),
        selected=_parse_selection(r.str_list("selected", ()), f"{where}.selected"),
    )
    r.finish()
    return folder


def _parse_selection(paths: tuple[str, ...], where: str) -> tuple[str, ...]:
    try:
        return normalize_selection(paths)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).removeprefix('selection: ')}") from exc


CONFIG_VERSION = 1
"""The layout of config.toml, written as its first key ``version``. A file from before
versions has no such key and is read as version 1 (the layout did not change); a file
written by a newer p2psync is refused untouched, never half-understood and rewritten."""


def check_config_version(data: dict[str, Any]) -> None:
    """Refuse a config written by a newer p2psync (or with a nonsense version)."""
    version = data.get("version", CONFIG_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"version: {version!r} is not a config version (1 or more)")
    if version > CONFIG_VERSION:
        raise ConfigError(
            f"version: config version {version} was written by a newer p2psync (this one "
            f"reads up to version {CONFIG_VERSION}); nothing was changed: upgrade p2psync "
            "or restore the config a backup holds"
        )


def parse_config(data: dict[str, Any]) -> Config:
    check_config_version(data)
    r = _Reader(data, "")
    r.get("version", int, CONFIG_VERSION)  # checked above; read so finish() accepts it
    name = r.get("name", str, None) or socket.gethostname()
    listen = tuple(
        parse_listen_address(text, f"listen[{i}]")
        for i, text in enumerate(r.str_list("listen", (DEFAULT_LISTEN,)))
    )
    api = validate_host_port(r.get("api", str, f"127.0.0.1:{DEFAULT_API_PORT}"), "api")
    disc_r = _Reader(r.get("discovery", dict, {}), "discovery")
    servers = disc_r.str_list("global_servers", ())
    for i, s in enumerate(servers):
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", s):
            raise ConfigError(f"discovery.global_servers[{i}]: {s!r} is not an http(s) URL")
    discovery = DiscoveryConfig(
        mdns=disc_r.get("mdns", bool, True),
        mdns_interfaces=disc_r.str_list("mdns_interfaces", ()),
        global_servers=servers,
        syncthing_local=disc_r.get("syncthing_local", bool, False),
    )
    disc_r.finish()
    devices = tuple(
        _parse_device(t, f"devices[{i}]") for i, t in enumerate(r.get("devices", list, []))
    )
    folders = tuple(
        _parse_folder(t, f"folders[{i}]") for i, t in enumerate(r.get("folders", list, []))
    )
    seen: set[str] = set()
    for i, f in enumerate(folders):
        if f.id in seen:
            raise ConfigError(f"folders[{i}].id: duplicate folder id {f.id!r}")
        seen.add(f.id)
    seen_devices: set[DeviceID] = set()
    for i, d in enumerate(devices):
        if d.id in seen_devices:
            raise ConfigError(f"devices[{i}].id: duplicate device {d.id}")
        seen_devices.add(d.id)
    relays = r.str_list("relays", ())
    for i, url in enumerate(relays):
        validate_relay_url(url, f"relays[{i}]")
    cfg = Config(
        name=name,
        listen=listen,
        api=api,
        max_send_kbps=r.non_negative("max_send_kbps", 0),
        max_recv_kbps=r.non_negative("max_recv_kbps", 0),
        discovery=discovery,
        devices=devices,
        folders=folders,
        relays=relays,
        relay_max_send_kbps=r.non_negative("relay_max_send_kbps", 0),
        relay_max_recv_kbps=r.non_negative("relay_max_recv_kbps", 0),
    )
    r.finish()
    return cfg


def _plain(value: Any) -> Any:
    """A config value as TOML/JSON holds it: tables for dataclasses, lists for tuples,
    device IDs in their canonical text, device and listen addresses as they were written."""
    if isinstance(value, DeviceID | DeviceAddress | ListenAddress):
        return str(value)
    if isinstance(value, DeviceConfig):
        return device_to_dict(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def device_to_dict(device: DeviceConfig) -> dict[str, Any]:
    """A device's settings as config.toml (and ``peer list --json``) write them."""
    data = {f.name: _plain(getattr(device, f.name)) for f in fields(device)}
    data["introduced_by"] = data["introduced_by"] or ""  # None is written as ""
    return data


def folder_to_dict(folder: FolderConfig) -> dict[str, Any]:
    """A folder's settings as ``folder list --json`` writes them (with ``selected``)."""
    data: dict[str, Any] = _plain(folder)
    return data


def config_to_dict(cfg: Config) -> dict[str, Any]:
    data: dict[str, Any] = _plain(cfg)
    for folder in data.get("folders", []):
        if not folder.get("selected"):
            del folder["selected"]  # the whole folder: written as before selective sync
    return data


def load_config(home: Path) -> Config:
    path = home / CONFIG_FILE
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"no config at {path}; run `p2psync init` first") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        line = line_of(text, str(exc).split(":", 1)[0])
        raise ConfigError(f"{path}{f' line {line}' if line else ''}: {exc}") from exc


def save_config(cfg: Config, home: Path) -> None:
    """Write the config atomically: temp file, fsync, rename, fsync the directory."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG_FILE
    data = tomli_w.dumps({"version": CONFIG_VERSION, **config_to_dict(cfg)}).encode("utf-8")
    tmp = path.with_name(f".{CONFIG_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
