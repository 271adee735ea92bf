"""Pure parts of the API and CLI support: rates, times, edits, safe rendering."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from p2psync.api import edits
from p2psync.api.client import _error_from
from p2psync.api.parsing import parse_time
from p2psync.api.rates import RateMeter
from p2psync.api.render import event_line, human_bytes, status_renderable
from p2psync.config import Config, DeviceConfig
from p2psync.errors import ConfigError, NotFoundError, P2PSyncError, UsageError
from p2psync.identity import generate_identity
from p2psync.pending import PendingFolder
from p2psync.textsafe import safe


def test_rate_meter_slope_and_since_connect() -> None:
    m = RateMeter(window=10)
    assert m.sample("d", 100.0, 1000, 0, connected_at=90.0) == (100.0, 0.0)  # since connect
    assert m.sample("d", 102.0, 3000, 500, connected_at=90.0) == (1000.0, 250.0)
    # samples older than the window drop out
    assert m.sample("d", 120.0, 3000, 500, connected_at=90.0) == (0.0, 0.0)
    # counters going backwards mean a new connection
    assert m.sample("d", 121.0, 10, 10, connected_at=120.0) == (10.0, 10.0)
    m.forget("d")
    assert m.sample("d", 200.0, 0, 0, connected_at=200.0) == (0.0, 0.0)


def test_parse_time() -> None:
    assert parse_time(None) is None and parse_time("") is None
    assert parse_time(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert parse_time("86400") == dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
    assert parse_time("2024-03-01T10:00:00+00:00") == dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)
    for bad in ("tomorrow", True, [1]):
        with pytest.raises(UsageError):
            parse_time(bad)


def test_edits_validate_like_the_cli() -> None:
    own = generate_identity().device_id
    other = generate_identity().device_id
    cfg = Config(name="x")
    with pytest.raises(UsageError):
        edits.add_device(cfg, own, own)
    with pytest.raises(UsageError, match=r"addresses\[0\]"):  # a bad argument: exit 2
        edits.add_device(cfg, own, other, addresses=["udp://x:1"])
    cfg, existed = edits.add_device(cfg, own, other, name="b")
    assert not existed and cfg.devices == (DeviceConfig(id=other, name="b"),)
    cfg = edits.set_device_paused(cfg, other, True)
    cfg, existed = edits.add_device(cfg, own, other, addresses=["tcp://127.0.0.1:5"])
    assert existed and cfg.devices[0].paused and cfg.devices[0].name == "b"
    folder = edits.add_folder(cfg, Path("/data/My Docs"), share=[other])
    assert folder.id == "My-Docs" and folder.devices == (other,) and folder.label == "My Docs"
    cfg = cfg.with_folder(folder)
    with pytest.raises(UsageError, match="already shared"):
        edits.add_folder(cfg, Path("/data/My Docs"), folder_id="x")
    with pytest.raises(UsageError, match="absolute"):
        edits.add_folder(cfg, Path("rel"))
    with pytest.raises(NotFoundError):
        edits.add_folder(cfg, Path("/data/y"), share=[generate_identity().device_id])
    with pytest.raises(NotFoundError):
        edits.set_folder_paused(cfg, "missing", True)
    assert edits.share_folder(cfg, "My-Docs", other) == (cfg, True)
    # the pending store holds text: accepting an offer parses it
    offers = [PendingFolder("o", "Offered", str(other), 1.0), PendingFolder("o", "", str(own), 2.0)]
    accepted = edits.accept_folder(cfg, offers, "o", Path("/data/o"))
    assert accepted.devices == (other,) and accepted.label == "Offered"  # only trusted offerers
    with pytest.raises(NotFoundError):
        edits.accept_folder(cfg, offers, "nope", Path("/data/n"))
    assert edits.remove_device(cfg, other).folder("My-Docs").devices == ()


def test_client_maps_error_kinds_back_to_exceptions() -> None:
    def resp(status, body):
        return httpx.Response(status, json=body)

    assert type(_error_from(resp(400, {"error": "bad", "kind": "ConfigError"}))) is ConfigError
    assert type(_error_from(resp(404, {"error": "gone"}))) is NotFoundError
    assert type(_error_from(resp(409, {"error": "no"}))) is UsageError
    e = _error_from(
        resp(400, {"error": "x", "kind": "AnnouncementError"})
    )  # custom __init__: not rebuilt
    assert type(e) is UsageError
    e = _error_from(resp(400, {"error": "x", "kind": "__class__"}))
    assert isinstance(e, P2PSyncError)
    assert "refused" in str(_error_from(resp(401, {"error": "key"})))


def _render(data) -> str:
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=False).print(status_renderable(data))
    return out.getvalue()


def test_status_rendering_neutralises_hostile_names() -> None:
    evil = "evil\x1b[2J\x1b[31m[bold]x[/bold]\u202e"
    counts = {"files": 1, "directories": 0, "symlinks": 0, "deleted": 0, "bytes": 2048}
    data = {
        "system": {
            "name": evil,
            "device_id": "AAAAAAA-B",
            "uptime": 65,
            "listen_addresses": ["tcp://127.0.0.1:1"],
            "api_address": "127.0.0.1:2",
        },
        "folders": [
            {
                "id": "f",
                "label": evil,
                "state": "syncing",
                "reason": "",
                "global": counts,
                "need": {**counts, "bytes": 1024},
                "need_items": 1,
                "completion": 50.0,
                "item_errors": [{"name": "bad\x07name", "error": "denied\x1b]0;t\x07"}],
                "devices": [{"id": "BBBBBBB-C", "name": evil, "in_sync": False}],
            }
        ],
        "devices": [
            {
                "id": "BBBBBBB-C",
                "name": evil,
                "paused": False,
                "connected": True,
                "address": "tcp://127.0.0.1:3",
                "in_bps": 2048.0,
                "out_bps": 0.0,
                "bytes_in": 4096,
                "bytes_out": 10,
            }
        ],
    }
    text = _render(data)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "[bold]x[/bold]" in text  # shown literally, not as markup
    assert "50%" in text and "2.0 KiB/s" in text and "1m 5s" in text
    assert "\x1b" not in event_line(
        {"id": 1, "type": "T\x1b", "time": 0, "data": {"item": "a\x1b[1m"}}
    )
    assert human_bytes(0) == "0 B" and human_bytes(1536) == "1.5 KiB"
    assert safe("ok name") == "ok name" and safe("a\nb") == "a\\nb"


def test_rate_meter_reads_zero_as_soon_as_nothing_moves() -> None:
    """A transfer at 1 MB/s sampled every second for 8 s, then it ends: the next samples
    read 0 (not a slope decaying over the rest of the window), in each direction alone."""
    m = RateMeter(window=10)
    now, received = 100.0, 0
    for _ in range(8):
        now += 1.0
        received += 1_000_000
        rate_in, _ = m.sample("d", now, received, 0, connected_at=100.0)
    assert rate_in == pytest.approx(1_000_000)
    now += 1.0
    received += 400_000  # the last bytes arrived during this second
    assert m.sample("d", now, received, 0, connected_at=100.0)[0] > 0
    now += 1.0
    assert m.sample("d", now, received, 0, connected_at=100.0) == (0.0, 0.0)
    # a poll soon after (another client) still reads 0; sending alone reads its own rate
    assert m.sample("d", now + 0.1, received, 0, connected_at=100.0) == (0.0, 0.0)
    assert m.sample("d", now + 2.0, received, 50_000, connected_at=100.0)[1] > 0
    assert m.sample("d", now + 2.0, received, 50_000, connected_at=100.0)[0] == 0.0
