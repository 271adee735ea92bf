import os
import re
from dataclasses import replace

import pytest

from p2psync.config import (
    Config,
    DeviceConfig,
    FolderConfig,
    VersioningConfig,
    load_config,
    save_config,
)
from p2psync.errors import ConfigError
from p2psync.identity import DeviceID, generate_identity

DEV = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
DEV_ID = DeviceID.parse(DEV)


def full_config() -> Config:
    return Config(
        name="laptop",
        listen=("tcp://127.0.0.1:22001", "tcp://[::1]:22001"),
        api="127.0.0.1:9999",
        devices=(
            DeviceConfig(
                id=DEV_ID, name="desk", addresses=("tcp://10.0.0.2:22001",), introducer=True
            ),
        ),
        folders=(
            FolderConfig(
                id="photos",
                path="/tmp/photos",
                label="Photos",
                type="receiveonly",
                devices=(DEV_ID,),
                rescan_interval_s=60,
                watcher=False,
                ignore_permissions=True,
                versioning=VersioningConfig(type="simple", keep=3),
            ),
        ),
    )


def test_round_trip(tmp_path) -> None:
    cfg = full_config()
    save_config(cfg, tmp_path)
    assert load_config(tmp_path) == cfg


def test_defaults_do_not_collide_with_syncthing() -> None:
    cfg = Config()
    assert all(":22000" not in str(url) for url in cfg.listen)
    assert not cfg.api.endswith(":8384")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path) -> None:
    save_config(full_config(), tmp_path)
    save_config(Config(name="x"), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.toml"]
    assert load_config(tmp_path).name == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "a"\nlisten = "tcp://x:1"\n', "listen: expected list"),
        ('listen = ["http://x:1"]\n', r"listen\[0\]: 'http://x:1' is not an address"),
        ('api = "localhost"\n', "api: 'localhost' is not HOST:PORT"),
        (
            '[[folders]]\nid = "a"\npath = "/x"\ntype = "mirror"\n',
            r"folders\[0\]\.type: must be one of",
        ),
        ('[[folders]]\npath = "/x"\n', r"folders\[0\]\.id: missing"),
        ('[[folders]]\nid = "../etc"\npath = "/x"\n', r"folders\[0\]\.id"),
        (
            '[[folders]]\nid = "a"\npath = "/x"\nrescan_interval_s = -5\n',
            "rescan_interval_s: must be >= 0",
        ),
        ('[[devices]]\nid = "NOTANID"\n', r"devices\[0\]\.id: device ID"),
        ('[[devices]]\nid = "' + DEV[:-1] + 'Z"\n', "check character"),
        ('colour = "blue"\n', "colour: unknown setting"),
        ('[discovery]\nmdns = "yes"\n', "discovery.mdns: expected bool"),
        ('[discovery]\nglobal_servers = ["ftp://x"]\n', "not an http"),
        (
            '[[folders]]\nid = "a"\npath = "/x"\n[[folders]]\nid = "a"\npath = "/y"\n',
            "duplicate folder",
        ),
        (
            '[[folders]]\nid = "a"\npath = "/x"\n[folders.versioning]\ntype = "git"\n',
            "versioning.type",
        ),
        (
            '[[folders]]\nid = "a"\npath = "/x"\nwatcher = 1\n',
            r"folders\[0\]\.watcher: expected bool",
        ),
        ("name = \n", "line 1"),
    ],
)
def test_invalid_config_names_key_and_keeps_file(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)
    assert path.read_text() == text


def test_missing_config(tmp_path) -> None:
    with pytest.raises(ConfigError, match="p2psync init"):
        load_config(tmp_path)


def test_env_overrides_mdns_interfaces(monkeypatch) -> None:
    cfg = replace(Config(), discovery=replace(Config().discovery, mdns_interfaces=("10.0.0.1",)))
    monkeypatch.setenv("P2PSYNC_MDNS_INTERFACES", "127.0.0.1, ::1")
    assert cfg.effective_mdns_interfaces() == ("127.0.0.1", "::1")
    monkeypatch.delenv("P2PSYNC_MDNS_INTERFACES")
    assert cfg.effective_mdns_interfaces() == ("10.0.0.1",)


def test_device_ids_are_normalised() -> None:
    from p2psync.config import parse_config

    cfg = parse_config({"devices": [{"id": DEV.lower().replace("-", "")}]})
    assert cfg.devices[0].id == DEV_ID and str(cfg.devices[0].id) == DEV


def test_device_ids_are_parsed_once_and_written_as_text(tmp_path) -> None:
    """Every device ID in the config (a device's id, its introducer, a folder's devices) is
    a DeviceID once loaded, and config.toml holds the same canonical text as before."""
    from p2psync.config import config_to_dict, parse_config

    other = generate_identity().device_id
    text = DEV.lower().replace("-", "")
    cfg = parse_config(
        {
            "devices": [{"id": text}, {"id": str(other), "introduced_by": text}],
            "folders": [{"id": "f", "path": "/data/f", "devices": [text, str(other)]}],
        }
    )
    first, second = cfg.devices
    assert (first.id, first.introduced_by) == (DEV_ID, None)
    assert (second.id, second.introduced_by) == (other, DEV_ID)
    assert cfg.folder("f").devices == (DEV_ID, other)
    data = config_to_dict(cfg)
    assert [(d["id"], d["introduced_by"]) for d in data["devices"]] == [
        (DEV, ""),
        (str(other), DEV),
    ]
    assert data["folders"][0]["devices"] == [DEV, str(other)]
    save_config(cfg, tmp_path)
    toml = (tmp_path / "config.toml").read_text()
    assert f'id = "{DEV}"' in toml and 'introduced_by = ""' in toml
    assert f'introduced_by = "{DEV}"' in toml
    assert load_config(tmp_path) == cfg


def test_device_addresses_are_parsed_once_and_saved_byte_for_byte(tmp_path, monkeypatch) -> None:
    """Every form of device address is parsed when the config is loaded; config.toml is
    saved again byte for byte (the texts as written, not the parsed forms' spelling),
    and the dialer uses the parsed forms without parsing again."""
    import tomllib

    from p2psync import endpoints
    from p2psync.config import config_to_dict, device_to_dict, parse_config
    from p2psync.endpoints import Endpoint, explicit_addresses, uses_discovery
    from p2psync.net import manager
    from p2psync.protocol.relay import RelayURL

    texts = [
        "dynamic",
        "tcp://Desk.Example.COM:22001",  # a host name as written (parsed: lower case)
        "tcp://[::1]:22001",  # an IPv6 literal
        "tcp://10.0.0.2:0022",  # a port as written (parsed: 22)
        f"relay://relay.example.net/?id={DEV}&pingInterval=1m0s",  # default port, extras
    ]
    parses = {"tcp": 0, "relay": 0}

    def counted(name: str, kind: str):
        real = getattr(endpoints, name)

        def parse(text: str, **kwargs):
            parses[kind] += 1
            return real(text, **kwargs)

        monkeypatch.setattr(endpoints, name, parse)

    counted("parse_endpoint", "tcp")
    counted("parse_relay_url", "relay")
    save_config(parse_config({"devices": [{"id": DEV, "addresses": texts}]}), tmp_path)
    written = (tmp_path / "config.toml").read_bytes()
    assert tomllib.loads(written.decode())["devices"][0]["addresses"] == texts
    parses.update(tcp=0, relay=0)

    cfg = load_config(tmp_path)
    # each address once ("dynamic" needs no parse), and the one listen address
    assert parses == {"tcp": 3 + 1, "relay": 1}
    (device,) = cfg.devices
    assert [str(a) for a in device.addresses] == texts
    assert [a.target for a in device.addresses] == [
        None,
        Endpoint("tcp", "desk.example.com", 22001),
        Endpoint("tcp", "::1", 22001),
        Endpoint("tcp", "10.0.0.2", 22),
        RelayURL("relay.example.net", 22067, DEV_ID),
    ]
    assert uses_discovery(device.addresses)

    def parsed_again(text: str, **kwargs):
        raise AssertionError(f"{text!r} parsed again")

    for module in (endpoints, manager):
        monkeypatch.setattr(module, "parse_endpoint", parsed_again)
        monkeypatch.setattr(module, "parse_relay_url", parsed_again)
    targets = [manager._dial_target(a) for a in explicit_addresses(device.addresses)]
    assert targets == [a.target for a in device.addresses[1:]]
    assert device_to_dict(device)["addresses"] == config_to_dict(cfg)["devices"][0]["addresses"]
    assert device_to_dict(device)["addresses"] == texts
    again = tmp_path / "again"
    save_config(cfg, again)
    assert (again / "config.toml").read_bytes() == written


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("tcp://h", "'tcp://h' is not an address like tcp://HOST:PORT"),
        ("tcp://[::1]", "'tcp://[::1]' is not an address like tcp://HOST:PORT"),
        ("Dynamic", "'Dynamic' is not an address like tcp://HOST:PORT"),
        ("relay://r:1/", "'relay://r:1/' needs exactly one id=RELAY-DEVICE-ID"),
    ],
)
def test_a_bad_device_address_is_refused_on_load(tmp_path, address, message) -> None:
    import tomli_w

    (tmp_path / "config.toml").write_text(
        tomli_w.dumps({"devices": [{"id": DEV, "addresses": ["dynamic", address]}]})
    )
    with pytest.raises(ConfigError, match=r"devices\[0\]\.addresses\[1\]: ") as err:
        load_config(tmp_path)
    assert message in str(err.value)


def test_listen_addresses_are_parsed_once_and_saved_byte_for_byte(tmp_path, monkeypatch) -> None:
    """Listen addresses are parsed when the config is loaded; config.toml is saved again
    byte for byte, and binding uses the parsed endpoints without parsing again."""
    import tomllib

    import trio

    from p2psync import endpoints
    from p2psync.config import config_to_dict, parse_config
    from p2psync.endpoints import Endpoint, ListenAddress
    from p2psync.net import listeners

    texts = [
        "tcp://Desk.Example.COM:22001",  # a host name as written (parsed: lower case)
        "tcp://127.0.0.1:02201",  # a port as written (parsed: 2201)
        "tcp://[0:0::1]:22001",  # an IPv6 literal as written (str(Endpoint): [::1])
        "tcp://0.0.0.0:22001",  # every interface
    ]
    save_config(parse_config({"listen": texts}), tmp_path)
    written = (tmp_path / "config.toml").read_bytes()
    assert tomllib.loads(written.decode())["listen"] == texts

    cfg = load_config(tmp_path)
    assert all(isinstance(a, ListenAddress) for a in cfg.listen)
    assert [str(a) for a in cfg.listen] == texts
    parsed = [
        Endpoint("tcp", "desk.example.com", 22001),
        Endpoint("tcp", "127.0.0.1", 2201),
        Endpoint("tcp", "0:0::1", 22001),
        Endpoint("tcp", "0.0.0.0", 22001),
    ]
    assert [a.endpoint for a in cfg.listen] == parsed
    assert config_to_dict(cfg)["listen"] == texts

    def parsed_again(text: str, **kwargs):
        raise AssertionError(f"{text!r} parsed again")

    for name in ("parse_endpoint", "parse_config_tcp"):
        monkeypatch.setattr(endpoints, name, parsed_again)
    bound: list[tuple[int, str]] = []

    async def open_tcp_listeners(port: int, *, host: str) -> list[trio.SocketListener]:
        bound.append((port, host))  # nothing is really bound: 0.0.0.0 is not loopback
        return []

    monkeypatch.setattr(listeners.trio, "open_tcp_listeners", open_tcp_listeners)
    opened, announce = trio.run(listeners.open_listeners_announced, cfg.listen)
    assert opened == [] and bound == [(e.port, e.host) for e in parsed]
    assert announce == [str(e) for e in parsed]
    again = tmp_path / "again"
    save_config(cfg, again)
    assert (again / "config.toml").read_bytes() == written


@pytest.mark.parametrize(
    "address", ["dynamic", "relay://r:1/?id=" + DEV, "tcp://h", "tcp://[1.2.3.4]:5"]
)
def test_a_bad_listen_address_is_refused_with_todays_message(address) -> None:
    from p2psync.config import parse_config

    message = rf"'{re.escape(address)}' is not an address like tcp://HOST:PORT"
    with pytest.raises(ConfigError, match=rf"^listen\[1\]: {message}$"):
        parse_config({"listen": ["tcp://127.0.0.1:0", address]})
    with pytest.raises(ConfigError, match=rf"^{message}$"):
        Config(listen=("tcp://127.0.0.1:0", address))  # type: ignore[arg-type]
