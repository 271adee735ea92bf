"""`p2psync demo`: two real daemons on loopback share a folder and a file arrives.

Each node is a ``python -m p2psync.cli --home H run`` subprocess with a temp home,
listening on 127.0.0.1 (port 0), mDNS off and the API on 127.0.0.1 (port 0). They are
configured through their control APIs exactly as the CLI would, then stopped by PID with
SIGTERM and the temp directory is removed. Only loopback is ever used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import Config, DiscoveryConfig, save_config
from ..endpoints import ListenAddress
from ..errors import DaemonNotRunningError, P2PSyncError
from ..identity import load_or_create_identity
from .auth import ensure_api_key
from .client import ApiClient, api_address

FOLDER_ID = "demo"
FILE_NAME = "hello.txt"
STOP_TIMEOUT = 10.0


@dataclass
class DemoNode:
    name: str
    home: Path
    data: Path
    device_id: str
    proc: subprocess.Popen[bytes] | None = None
    client: ApiClient | None = None


def _init_node(base: Path, name: str) -> DemoNode:
    home = base / name / "home"
    identity, _ = load_or_create_identity(home)
    cfg = replace(
        Config(),
        name=f"demo-{name}",
        listen=(ListenAddress.parse("tcp://127.0.0.1:0"),),
        api="127.0.0.1:0",
        discovery=DiscoveryConfig(mdns=False),
    )
    save_config(cfg, home)
    ensure_api_key(home)
    return DemoNode(name, home, base / name / "data", str(identity.device_id))


def _start(node: DemoNode) -> None:
    env = dict(os.environ)
    env.setdefault("P2PSYNC_MDNS_INTERFACES", "127.0.0.1")
    node.proc = subprocess.Popen(
        [sys.executable, "-m", "p2psync.cli", "--home", str(node.home), "run"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(what: str, deadline: float, check: Callable[[], Any]) -> Any:
    while True:
        try:
            value = check()
        except DaemonNotRunningError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise P2PSyncError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _connect(node: DemoNode, deadline: float) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        assert node.proc is not None
        if node.proc.poll() is not None:
            raise P2PSyncError(
                f"node {node.name} exited with code {node.proc.returncode}; "
                f"see {node.home / 'p2psync.log'}"
            )
        if not (node.home / "api.address").exists():
            return None
        if node.client is None:
            address = api_address(node.home)
            assert address is not None
            node.client = ApiClient(address, ensure_api_key(node.home), timeout=5)
        return node.client.check_home(node.home)

    return _wait(f"node {node.name} to start", deadline, ready)


def _stop(node: DemoNode) -> None:
    if node.client is not None:
        node.client.close()
    proc = node.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_demo(say: Callable[[str], None], *, timeout: float = 25.0, keep: bool = False) -> None:
    """Run the whole demo, narrating each step through ``say``; always cleans up."""
    deadline = time.monotonic() + timeout
    base = Path(tempfile.mkdtemp(prefix="p2psync-demo-"))
    nodes: list[DemoNode] = []
    try:
        say(f"1. Creating two nodes in {base}")
        a, b = _init_node(base, "alice"), _init_node(base, "bob")
        nodes += [a, b]
        say(f"   alice: {a.device_id}")
        say(f"   bob:   {b.device_id}")
        say("2. Starting both daemons (loopback only, LAN discovery off)")
        for n in nodes:
            _start(n)
        sys_a, sys_b = _connect(a, deadline), _connect(b, deadline)
        assert a.client is not None and b.client is not None
        ca, cb = a.client, b.client
        say(
            f"   alice listens on {', '.join(sys_a['listen_addresses'])}, API http://{a.client.address}"
        )
        say(
            f"   bob listens on {', '.join(sys_b['listen_addresses'])}, API http://{b.client.address}"
        )
        say("3. Introducing them to each other (peer add, both ways)")
        a.client.post(
            "/api/devices",
            {"id": b.device_id, "name": "bob", "addresses": sys_b["listen_addresses"]},
        )
        b.client.post(
            "/api/devices",
            {"id": a.device_id, "name": "alice", "addresses": sys_a["listen_addresses"]},
        )
        _wait(
            "the nodes to connect",
            deadline,
            lambda: any(d["connected"] for d in ca.get("/api/devices")),
        )
        say("   connected over TLS 1.3")
        say(f"4. alice shares folder {FOLDER_ID!r} ({a.data}) with bob")
        a.client.post(
            "/api/folders",
            {"path": str(a.data), "id": FOLDER_ID, "label": "Demo", "devices": [b.device_id]},
        )
        _wait(
            "bob to see the offer",
            deadline,
            lambda: any(f["folder_id"] == FOLDER_ID for f in cb.get("/api/pending/folders")),
        )
        say(f"5. bob accepts it into {b.data}")
        b.client.post(f"/api/pending/folders/{FOLDER_ID}/accept", {"path": str(b.data)})
        text = f"Hello from alice at {time.strftime('%H:%M:%S')}\n"
        say(f"6. alice writes {FILE_NAME}")
        (a.data / FILE_NAME).write_text(text, "utf-8")
        a.client.post(f"/api/folders/{FOLDER_ID}/scan", {"paths": [FILE_NAME]})
        target = b.data / FILE_NAME
        started = time.monotonic()

        def arrived() -> bool:
            try:
                return target.read_text("utf-8") == text
            except (FileNotFoundError, UnicodeDecodeError):
                return False

        _wait(f"{FILE_NAME} to arrive on bob", deadline, arrived)
        took = time.monotonic() - started
        say(f"7. {FILE_NAME} arrived on bob after {took:.1f} s: {text.strip()!r}")
        say("8. Stopping both daemons (SIGTERM) and cleaning up")
    finally:
        for n in nodes:
            _stop(n)
        if keep:
            say(f"   kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    say("Demo complete.")
