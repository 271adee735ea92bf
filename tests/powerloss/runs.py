"""Running two daemons through a scenario with the power cut on one of them.

Device "b" (the one that loses power) keeps its home and its folder on crashfs; device
"a" runs on a normal directory. A scenario is prepared once (both daemons run to
convergence on plain directories and stop), then every trial starts from copies of that
state, applies the scenario's change, cuts b's power at a chosen sync request, checks
what survived, restarts b on it and checks that the folder converges.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import crashfs

from p2psync.config import DeviceConfig, FolderConfig, VersioningConfig, load_config, save_config
from p2psync.fs.internal import VERSIONS_DIR
from p2psync.identity import load_identity
from p2psync.index.store import IndexStore

P2PSYNC = [sys.executable, "-m", "p2psync.cli"]
FOLDER = "shared"
ENV = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}

Tree = dict[str, str]  # folder-relative name -> sha256 of the content


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path, *, internal: bool = False) -> Tree:
    """Every regular file under ``root`` (p2psync's internal names left out, its
    versions too unless ``internal``)."""
    out: Tree = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if (internal and d == VERSIONS_DIR) or not d.startswith(".p2p")]
        for f in files:
            if f.startswith(".p2p"):
                continue
            p = Path(dirpath, f)
            if p.is_file() and not p.is_symlink():
                out[os.path.relpath(p, root)] = sha(p.read_bytes())
    return out


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log  # outside the crashfs mount: it must survive the cut
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*P2PSYNC, "--home", str(self.home), "run", "-v"],
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def power_off(self, mount) -> None:
        """SIGKILL, then let crashfs fail the requests it froze so the process can exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        mount.send("release")
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Scenario:
    """What both devices hold before (``a_files``/``b_files``, synced), the change made
    before the trial (``change(a_data, b_data)``), and the checks."""

    name: str
    a_files: dict[str, bytes] = field(default_factory=dict)
    change: Callable[[Path, Path], None] = lambda a, b: None
    versioning: str = "none"
    # content b must still hold somewhere (any name, versions included) at every point
    keep_on_b: Callable[[], set[str]] = set
    # names whose content may be any of these at a cut (others: not constrained by name)
    allowed: Callable[[], dict[str, set[str]]] = dict
    # names the user changed on b before the trial (their index records are stale)
    edited_on_b: frozenset[str] = frozenset()
    # the converged tree both devices must end with (None: a and b equal is enough)
    final: Callable[[], Tree | None] = lambda: None


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def init_home(home: Path, name: str, port: int) -> None:
    subprocess.run(
        [*P2PSYNC, "--home", str(home), "init", "--name", name, "--no-default-folder",
         "--no-mdns", "--listen", f"tcp://127.0.0.1:{port}", "--api", "127.0.0.1:0"],
        env=ENV, check=True, capture_output=True,
    )  # fmt: skip


def link(home: Path, data: Path, peer_home: Path, peer_port: int, versioning: str) -> None:
    cfg = load_config(home)
    peer = load_identity(peer_home).device_id
    cfg = cfg.with_device(
        DeviceConfig(id=peer, name=peer_home.parent.name, addresses=(f"tcp://127.0.0.1:{peer_port}",))
    ).with_folder(
        FolderConfig(
            id=FOLDER, path=str(data), devices=(peer,), rescan_interval_s=0, watcher=False,
            versioning=VersioningConfig(type=versioning),
        )
    )  # fmt: skip
    save_config(cfg, home)


@dataclass
class Trial:
    cut_at: int | None  # sync request to cut before; None: after the change converged
    syncs: int = 0  # sync requests b made before the cut
    survived: int = 0  # user files on b right after the cut
    outcome: str = ""


class Bench:
    """One scenario's prepared state and its trials, under ``root``."""

    def __init__(self, root: Path, scenario: Scenario) -> None:
        self.root = root
        self.s = scenario
        self.a_home, self.a_data = root / "a" / "home", root / "a" / "data"
        self.run_dir = root / "run"
        self.mnt = self.run_dir / "mnt"  # crashfs mounts here: b's home and folder
        self.b_home, self.b_data = self.mnt / "home", self.mnt / "data"
        self.template = root / "template"
        self.a_port, self.b_port = free_port(), free_port()

    # ---- preparation --------------------------------------------------------------------

    def prepare(self) -> None:
        """Both devices converged on the scenario's starting files, stopped."""
        for d in (self.a_data, self.b_data):
            d.mkdir(parents=True)
        init_home(self.a_home, "a", self.a_port)
        init_home(self.b_home, "b", self.b_port)
        link(self.a_home, self.a_data, self.b_home, self.b_port, "none")
        link(self.b_home, self.b_data, self.a_home, self.a_port, self.s.versioning)
        write_files(self.a_data, self.s.a_files)
        a, b = Daemon(self.a_home, self.root / "a.log"), Daemon(self.b_home, self.root / "b.log")
        a.start()
        b.start()
        try:
            want = tree(self.a_data)
            wait_until(lambda: tree(self.b_data) == want, 60, "the starting files on b")
            self._wait_indexed(b)
        finally:
            a.stop()
            b.stop()
        self.template.mkdir()
        shutil.move(self.root / "a", self.template / "a")
        shutil.move(self.mnt, self.template / "b")
        self.mnt.mkdir()

    def _wait_indexed(self, b: Daemon) -> None:
        """Until b's status shows the folder idle with nothing needed."""
        import json

        def idle() -> bool:
            r = subprocess.run(
                [*P2PSYNC, "--home", str(b.home), "status", "--json"],
                env=ENV, capture_output=True, text=True,
            )  # fmt: skip
            if r.returncode != 0:
                return False
            f = next((f for f in json.loads(r.stdout)["folders"] if f["id"] == FOLDER), None)
            return (
                bool(f)
                and f.get("state") == "idle"
                and not f.get("need_items")
                and not f.get("need_bytes")
            )

        wait_until(idle, 60, "b idle")

    # ---- one trial ----------------------------------------------------------------------

    def run(self, cut_at: int | None) -> Trial:
        trial = Trial(cut_at)
        run_dir = self.run_dir
        for d in (run_dir / "backing", run_dir / "state", run_dir / "out", self.root / "a"):
            if d.exists():
                shutil.rmtree(d)
        clear(self.mnt)
        shutil.copytree(self.template / "a", self.root / "a", symlinks=True)
        shutil.copytree(self.template / "b", run_dir / "backing", symlinks=True)
        self.s.change(self.a_data, run_dir / "backing" / "data")
        a, b = Daemon(self.a_home, self.root / "a.log"), Daemon(self.b_home, self.root / "b.log")
        try:
            a.start()
            with crashfs(run_dir, backing=run_dir / "backing") as m:
                if cut_at is not None:
                    m.arm(cut_at)
                b.start()
                final = self.s.final()
                seen = run_dir / "backing" / "data"  # never read through a mount that may freeze
                done = (
                    (lambda: tree(seen) == final)
                    if final is not None
                    else (lambda: tree(seen) == tree(self.a_data))
                )
                deadline = time.monotonic() + 90
                cut = False
                while time.monotonic() < deadline:
                    if m.wait_cut(0.2):
                        cut = True
                        break
                    if done():
                        break
                if not cut:
                    m.cut()
                    assert m.wait_cut(60), "crashfs did not cut"
                b.power_off(m)
                m.send("count")
                trial.syncs = int(m.expect("count", 30).split()[1])
            clear(self.mnt)
            for p in m.output.iterdir():
                shutil.move(p, self.mnt / p.name)
            self.check_cut()
            trial.survived = len(tree(self.b_data))
            b.start()
            self.check_converged()
            trial.outcome = "converged"
        finally:
            b.kill()
            a.stop()
        return trial

    # ---- the invariants -----------------------------------------------------------------

    def check_cut(self) -> None:
        """What survived the cut on b, before b runs again."""
        everything = tree(self.b_data, internal=True)
        contents = set(everything.values())
        missing = self.s.keep_on_b() - contents
        assert not missing, f"content durable before the trial is gone from b: {missing}"
        for name, allowed in self.s.allowed().items():
            got = everything.get(name)
            assert got is None or got in allowed, f"{name}: neither its old nor its new content"
        # the disk may be ahead of the index (the index commits without fsync; the next
        # scan sees the change), never behind it
        problems = index_vs_disk(self.b_home, self.b_data, self.s.edited_on_b, self.s.final())
        assert not problems, f"b's index claims content its disk does not have: {problems}"

    def check_converged(self) -> None:
        final = self.s.final()

        def same() -> bool:
            ta, tb = tree(self.a_data), tree(self.b_data)
            return ta == tb and (final is None or ta == final)

        try:
            wait_until(same, 60, "a and b converged after the restart")
        except AssertionError as exc:
            ta, tb = tree(self.a_data), tree(self.b_data)
            diff = sorted(set(ta.items()) ^ set(tb.items()))[:10]
            raise AssertionError(
                f"{exc}; a has {len(ta)}, b {len(tb)} files; differ: {diff}"
            ) from None
        missing = self.s.keep_on_b() - set(tree(self.b_data, internal=True).values())
        assert not missing, f"content durable before the trial is gone from b: {missing}"


def clear(directory: Path) -> None:
    for p in directory.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def index_vs_disk(home: Path, data: Path, edited: frozenset[str], final: Tree | None) -> list[str]:
    """Files b's index records as present whose content on disk differs (or is absent),
    except those the user changed after they were scanned and those whose disk state is
    already the converged one (``final``: the disk is ahead of the index)."""
    device = load_identity(home).device_id.raw
    problems = []
    with IndexStore.open(home / "index.sqlite3", device) as index:
        for f in index.iter_local(FOLDER):
            if f.deleted or f.invalid or not f.is_file or f.name in edited:
                continue
            path = data / f.name
            if final is not None:
                try:
                    on_disk: str | None = sha(path.read_bytes())
                except OSError:
                    on_disk = None
                if on_disk == final.get(f.name):
                    continue
            try:
                content = path.read_bytes()
            except OSError:
                problems.append(f"{f.name}: missing")
                continue
            if len(content) != f.size:
                problems.append(f"{f.name}: {len(content)} bytes, index says {f.size}")
                continue
            for blk in f.blocks:
                if hashlib.sha256(content[blk.offset : blk.offset + blk.size]).digest() != blk.hash:
                    problems.append(f"{f.name}: block at {blk.offset} differs")
                    break
    return problems
