"""Two `p2psync run` daemons that cannot dial each other sync through a real strelaysrv.

Each knows the other only at a closed port plus the relay's URL, so every byte between
them goes through the relay (inside their own end-to-end TLS session).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from strelaysrv_process import Relay, free_port
from test_cli_daemon import ENV, P2PSYNC, cli_run, init_home, ok, wait_for

RELAY_ENV = {**ENV, "P2PSYNC_DIAL_BACKOFF": "0.2"}


@dataclass
class Node:
    name: str
    home: Path
    data: Path
    proc: subprocess.Popen[bytes] | None = None
    device_id: str = ""
    listen: str = ""

    def start(self) -> None:
        (self.home / "api.address").unlink(missing_ok=True)
        with (self.home.parent / "daemon.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*P2PSYNC, "--home", str(self.home), "run"],
                env=RELAY_ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: (
                (self.home / "api.address").exists()
                and cli_run(self.home, "status", "--json").exit_code == 0
            ),
            what=f"daemon {self.name}",
        )
        system = self.status()["system"]
        self.device_id, self.listen = system["device_id"], system["listen_addresses"][0]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def status(self) -> dict:
        return json.loads(ok(self.home, "status", "--json"))

    def peer(self) -> dict:
        return json.loads(ok(self.home, "peer", "list", "--json"))[0]

    def log(self) -> str:
        path = self.home.parent / "daemon.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def relayed_pair(tmp_path: Path, relay: Relay) -> Iterator[tuple[Node, Node]]:
    """Nodes a and b sharing folder "shared", each knowing the other only at a closed
    port and through ``relay`` (which need not be running yet)."""
    nodes = [Node(n, tmp_path / n / "home", tmp_path / n / "data") for n in ("a", "b")]
    try:
        for node in nodes:
            init_home(node.home, node.name)
            node.data.mkdir(parents=True)
            ok(node.home, "relay", "add", relay.url)
            node.start()
        a, b = nodes
        closed = f"tcp://127.0.0.1:{free_port()}"
        for me, other in ((a, b), (b, a)):
            ok(
                me.home, "peer", "add", other.device_id, "--name", other.name,
                "--address", closed, "--address", relay.url, "--no-dynamic",
            )  # fmt: skip
        ok(a.home, "folder", "add", str(a.data), "--id", "shared", "--share", b.device_id)
        ok(b.home, "folder", "add", str(b.data), "--id", "shared", "--share", a.device_id)
        yield a, b
    except BaseException:
        for node in nodes:
            print(f"---- {node.name} log ----\n{node.log()[-6000:]}")
        print(f"---- relay log ----\n{relay.log()[-3000:]}")
        raise
    finally:
        for node in nodes:
            node.stop()


def arrives(node: Node, name: str, content: bytes) -> bool:
    path = node.data / name
    return path.exists() and path.read_bytes() == content


def write(node: Node, name: str, content: bytes, folder: str = "shared") -> None:
    (node.data / name).write_bytes(content)
    ok(node.home, "scan", folder)


def test_two_nodes_that_cannot_dial_each_other_sync_through_the_relay(
    tmp_path: Path, relay: Relay
) -> None:
    with relayed_pair(tmp_path, relay) as (a, b):
        payload = bytes(range(256)) * 4096  # 1 MiB: many blocks through the relay
        write(a, "through-relay.bin", payload)
        wait_for(lambda: arrives(b, "through-relay.bin", payload), 60, "the file on b")
        for me in (a, b):
            peer = me.peer()
            assert peer["connected"] and peer["relayed"], peer
            assert peer["address"] == relay.url
            system = me.status()["system"]
            assert system["relays"] == [{"url": relay.url, "joined": True, "last_error": ""}]
        assert "(relayed" in ok(a.home, "status")
        assert "(relayed)" in ok(a.home, "peer", "list")
        assert "joined" in ok(a.home, "relay", "list")


def test_relay_down_at_start_then_up(tmp_path: Path, relay: Relay) -> None:
    relay.stop()
    with relayed_pair(tmp_path, relay) as (a, b):
        wait_for(lambda: a.status()["system"]["relays"][0]["last_error"], 15, "a join error")
        write(a, "later.txt", b"relay came up\n")
        relay.start()
        wait_for(lambda: arrives(b, "later.txt", b"relay came up\n"), 60, "the file on b")
        assert b.peer()["relayed"]


def test_relay_restarted_mid_session(tmp_path: Path, relay: Relay) -> None:
    with relayed_pair(tmp_path, relay) as (a, b):
        write(a, "one.txt", b"first\n")
        wait_for(lambda: arrives(b, "one.txt", b"first\n"), 60, "the first file on b")
        relay.stop()
        wait_for(lambda: not b.peer()["connected"], 30, "b noticing the relay is gone")
        relay.start()
        write(b, "two.txt", b"second, after the relay restarted\n")
        wait_for(
            lambda: arrives(a, "two.txt", b"second, after the relay restarted\n"), 90, "two on a"
        )
        assert a.peer()["relayed"]


def test_a_direct_connection_replaces_the_relayed_one(tmp_path: Path, relay: Relay) -> None:
    with relayed_pair(tmp_path, relay) as (a, b):
        write(a, "one.txt", b"via relay\n")
        wait_for(lambda: arrives(b, "one.txt", b"via relay\n"), 60, "the file on b")
        assert b.peer()["relayed"]
        # a becomes reachable: b learns its real address
        ok(b.home, "peer", "add", a.device_id, "--address", a.listen, "--address", relay.url)
        wait_for(
            lambda: (p := b.peer())["connected"] and not p["relayed"], 30, "a direct connection"
        )
        assert b.peer()["address"] == a.listen
        wait_for(lambda: (p := a.peer())["connected"] and not p["relayed"], 30, "direct on a")
        write(b, "two.txt", b"direct\n")
        wait_for(lambda: arrives(a, "two.txt", b"direct\n"), 60, "the file on a")
        assert not b.peer()["relayed"]  # the relayed connection did not come back


def test_relays_are_joined_and_left_through_the_running_daemon(
    tmp_path: Path, relay: Relay
) -> None:
    node = Node("solo", tmp_path / "solo" / "home", tmp_path / "solo" / "data")
    init_home(node.home, node.name)
    try:
        node.start()
        assert node.status()["system"]["relays"] == []
        bad = cli_run(node.home, "relay", "add", "relay://127.0.0.1:1/?id=NOT-AN-ID")
        assert bad.exit_code == 2 and "id is not a device ID" in bad.output
        # the relay's own URL carries descriptive parameters; the config keeps the canonical form
        ok(node.home, "relay", "add", relay.url + "&pingInterval=1m0s&providedBy=test")
        wait_for(lambda: "joined" in ok(node.home, "relay", "list"), 20, "joined")
        assert node.status()["system"]["relays"][0] == {
            "url": relay.url,
            "joined": True,
            "last_error": "",
        }
        assert json.loads(ok(node.home, "relay", "list", "--json"))[0]["joined"] is True
        ok(node.home, "relay", "remove", relay.url)
        wait_for(lambda: node.status()["system"]["relays"] == [], 20, "left the relay")
        assert "No relays" in ok(node.home, "relay", "list")
        assert cli_run(node.home, "relay", "remove", relay.url).exit_code != 0
    finally:
        node.stop()
