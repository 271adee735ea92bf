"""Two running daemons "a" and "b" that trust each other, configured through the CLI,
for the user-flow tests of issue 18."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_cli_cluster import start
from test_cli_daemon import init_home, ok, wait_for

from p2psync.config import Config, load_config, save_config


def status(home: Path) -> dict:
    return json.loads(ok(home, "status", "--json"))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Callable[..., dict[str, tuple[Path, Path]]]]:
    """Starts two daemons "a" and "b" that trust each other: {name: (home, data)};
    ``edit_b`` changes b's config.toml before it starts."""
    procs: list[subprocess.Popen] = []

    def make(edit_b: Callable[[Config], Config] | None = None) -> dict[str, tuple[Path, Path]]:
        nodes = {n: (tmp_path / n / "home", tmp_path / n / "data") for n in ("a", "b")}
        for name, (home, _) in nodes.items():
            init_home(home, name)
            if name == "b" and edit_b is not None:
                save_config(edit_b(load_config(home)), home)
            procs.append(start(home))
        info = {n: status(home)["system"] for n, (home, _) in nodes.items()}
        for n, (home, _) in nodes.items():
            other = "b" if n == "a" else "a"
            ok(
                home,
                "peer",
                "add",
                info[other]["device_id"],
                "--name",
                other,
                "--address",
                info[other]["listen_addresses"][0],
            )
        return nodes

    try:
        yield make
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def share(nodes: dict[str, tuple[Path, Path]], folder_id: str, *accept_args: str) -> None:
    """a shares ``folder_id`` (its data dir) with b; b accepts it at its data dir."""
    (home_a, data_a), (home_b, data_b) = nodes["a"], nodes["b"]
    b_id = status(home_b)["system"]["device_id"]
    ok(home_a, "folder", "add", str(data_a), "--id", folder_id, "--share", b_id)
    wait_for(lambda: folder_id in ok(home_b, "folder", "pending"), what="the offer on b")
    ok(home_b, "folder", "accept", folder_id, str(data_b), *accept_args)


def folder_of(home: Path, folder_id: str) -> dict:
    return next(f for f in status(home)["folders"] if f["id"] == folder_id)


def text_of(path: Path) -> str | None:
    """The file's text, or None while it is not there (e.g. being replaced)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
