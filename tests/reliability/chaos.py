"""Chaos runs (issue 25.2): five daemons in their own processes, random user actions on
each folder interleaved with random faults, then a check that nothing was lost.

The user's actions work on the folders directly, like any program would, and each
write leaves a *token* (a line ``t:<device>-<n>-<random>``) in the file it writes. A
model of the actions knows which tokens were written and which ones a user destroyed
on purpose: an edit that replaces a file destroys the tokens that were in it at that
instant, a delete or a truncate destroys what it removed. Every other token must be
somewhere in the final, identical trees — in the file, in a renamed file or directory,
or in a conflict copy. Causally later writes supersede earlier ones only through the
user who saw them; a concurrent write is never superseded, so it must survive as the
winner or as a conflict copy.

To know exactly what a user destroyed while the daemon may be replacing the same file,
edits swap the new file in with ``renameat2(RENAME_EXCHANGE)`` and read what they took
out; deletes first rename the file away (atomic) and read it; appends and truncates
check after the write that the file they wrote is still the one in the folder.

Faults: SIGKILL and restart, partitions and heals (a chaos proxy on every directed link),
a disk filling up and freed (each folder on its own tmpfs, as root), a device paused and
resumed, a folder paused and resumed, connections cut at a random byte, and a device's
wall clock jumping 10 minutes to 2 hours forward or back and later back again, as an NTP
step or a user setting the clock does (libfaketime, its monotonic clock left alone:
trio's timers run on it, as they would through a real jump).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio
from chaos_proxy import ChaosProxy, Fault
from faults import P2PSYNC, Daemon, fill, tmpfs

from p2psync.config import Config, DeviceConfig, FolderConfig, load_config, save_config
from p2psync.identity import DeviceID, load_identity

FOLDER = "shared"
TMP_PREFIX = ".chaos-tmp-"
NAMES = ("n0", "n1", "n2", "n3", "n4")
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
# Debian's libfaketime (.ci/run installs it). The daemon's wall clock is shifted by what
# its node's clock file says ("+0", "-3600"), read at most once a second; its monotonic
# clock is not faked (libfaketime breaks time.sleep then, which the daemon does not use).
FAKETIME_LIB = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("/nonexistent"))
CLOCK_JUMP_SECONDS = (600, 7200)


def faked_clock_env(clock_file: Path) -> dict[str, str]:
    clock_file.write_text("+0\n")
    return {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def renameat2(src: Path, dst: Path, flags: int) -> None:
    rc = _libc.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(src), None, str(dst))


def tokens_of(data: bytes) -> set[str]:
    return {line[2:] for line in data.decode("utf-8", "replace").splitlines() if line[:2] == "t:"}


def is_internal(rel: Path) -> bool:
    return any(p.startswith((".p2p", TMP_PREFIX, ".stversions")) for p in rel.parts)


def user_tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not is_internal(rel_dir / d)]
        for name in filenames:
            rel = rel_dir / name
            if not is_internal(rel):
                with contextlib.suppress(FileNotFoundError):
                    out[rel.as_posix()] = (root / rel).read_bytes()
    return out


def dir_tree(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, _ in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not is_internal(rel_dir / d)]
        out.update((rel_dir / d).as_posix() for d in dirnames)
    return out


@dataclass
class Model:
    """Tokens written and tokens a user destroyed on purpose."""

    written: dict[str, str] = field(default_factory=dict)  # token -> device
    destroyed: set[str] = field(default_factory=set)
    counter: int = 0

    def new(self, device: str, rng: random.Random) -> str:
        self.counter += 1
        token = f"{device}-{self.counter:06}-{rng.getrandbits(32):08x}"
        self.written[token] = device
        return token

    def unwrite(self, token: str) -> None:
        """The write never reached the folder (it failed, or went to a replaced file)."""
        self.written.pop(token, None)

    def must_survive(self) -> set[str]:
        return set(self.written) - self.destroyed


@dataclass
class ChaosConfig:
    seed: int
    seconds: float  # of actions and faults, before the quiescence phase
    action_interval: tuple[float, float] = (0.05, 0.4)
    fault_interval: tuple[float, float] = (3.0, 8.0)
    fault_duration: tuple[float, float] = (2.0, 8.0)
    converge_timeout: float = 240.0
    # Each node's tmpfs holds the whole shared tree, its index and its logs. The tree
    # grows with the run (about 7 MiB a minute of actions), and a disk that stays full
    # after the faults end cannot converge: the disk grows with the length of the run.
    disk_mib_base: int = 48
    disk_mib_per_minute: int = 12

    @property
    def disk_size(self) -> str:
        return f"{self.disk_mib_base + round(self.disk_mib_per_minute * self.seconds / 60)}m"


@dataclass
class Node:
    name: str
    home: Path
    data: Path
    port: int
    daemon: Daemon
    device_id: str = ""
    restart_at: float | None = None
    clock_file: Path | None = None  # its wall clock's offset (libfaketime), if faked
    clock_back_at: float | None = None


class ProxyMesh:
    """A ChaosProxy on every directed link, served by trio in a thread of its own."""

    def __init__(self, ports: dict[str, int], seed: int) -> None:
        self.ports = ports
        self.seed = seed
        self.proxies: dict[tuple[str, str], ChaosProxy] = {}
        self.addresses: dict[tuple[str, str], str] = {}
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> ProxyMesh:
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"proxies did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(30)

    async def _main(self) -> None:
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    for i, (a, b) in enumerate(
                        (a, b) for a in self.ports for b in self.ports if a != b
                    ):
                        proxy = ChaosProxy(("127.0.0.1", self.ports[b]), seed=self.seed + i)
                        self.addresses[(a, b)] = await nursery.start(proxy.serve)
                        self.proxies[(a, b)] = proxy
                    self._token = trio.lowlevel.current_trio_token()
                    self._ready.set()
                    await trio.sleep_forever()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self._error = exc
            self._ready.set()
            raise

    def _call(self, fn: Any, *args: Any) -> Any:
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def partition(self, group: set[str]) -> None:
        """Cut every link between ``group`` and the rest, both ways."""

        def apply() -> None:
            for (a, b), proxy in self.proxies.items():
                if (a in group) != (b in group):
                    proxy.partition()

        self._call(apply)

    def heal(self) -> None:
        self._call(lambda: [p.heal() for p in self.proxies.values()])

    def cut_next(self, a: str, b: str, rng: random.Random) -> None:
        self._call(self.proxies[(a, b)].set_fault, Fault(rng.choice(["cut", "flip"])))


class ChaosRun:
    def __init__(self, root: Path, config: ChaosConfig, *, use_tmpfs: bool) -> None:
        self.root = root
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.use_tmpfs = use_tmpfs
        self.model = Model()
        self.actions: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.events: list[str] = []
        self.divergence: dict[str, Any] | None = None  # set when convergence times out
        self.nodes: dict[str, Node] = {}
        self.paused_folders: dict[str, float] = {}
        self.paused_peers: dict[tuple[str, str], float] = {}
        self.partition_until: float | None = None
        self.disk_until: dict[str, float] = {}
        self._fault_bag: list[str] = []
        self.started = time.monotonic()
        self._stack = contextlib.ExitStack()

    # ---- set-up ---------------------------------------------------------------------

    def _log(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:8.2f} {text}")

    def setup(self) -> None:
        ports = {n: _free_port() for n in NAMES}
        self.mesh = self._stack.enter_context(ProxyMesh(ports, self.cfg.seed))
        for n in NAMES:
            base = self.root / n
            home, data = base / "home", base / "data"
            if self.use_tmpfs:
                self._stack.enter_context(tmpfs(base / "disk", self.cfg.disk_size))
                home, data = base / "disk" / "home", base / "disk" / "data"
            data.mkdir(parents=True)
            (data / ".p2pignore").write_text(f"{TMP_PREFIX}*\n")
            _run(
                home, "init", "--name", n, "--no-default-folder", "--no-mdns",
                "--listen", f"tcp://127.0.0.1:{ports[n]}", "--api", "127.0.0.1:0",
            )  # fmt: skip
            clock = base / "clock" if FAKETIME_LIB.exists() else None
            env = faked_clock_env(clock) if clock is not None else {}
            self.nodes[n] = Node(n, home, data, ports[n], Daemon(home, env=env), clock_file=clock)
        for node in self.nodes.values():
            node.device_id = str(load_identity(node.home).device_id)
        for node in self.nodes.values():
            cfg: Config = load_config(node.home)
            peers = [p for p in self.nodes.values() if p is not node]
            for p in peers:
                address = self.mesh.addresses[(node.name, p.name)]
                cfg = cfg.with_device(
                    DeviceConfig(id=DeviceID.parse(p.device_id), name=p.name, addresses=(address,))
                )
            cfg = cfg.with_folder(
                FolderConfig(
                    id=FOLDER,
                    path=str(node.data),
                    devices=tuple(DeviceID.parse(p.device_id) for p in peers),
                    rescan_interval_s=30,
                    watcher=True,
                    max_conflicts=-1,
                    mass_delete_min_deletes=1_000_000,
                )
            )
            save_config(cfg, node.home)
        for node in self.nodes.values():
            node.daemon.start()

    def close(self) -> None:
        for node in self.nodes.values():
            node.daemon.stop()
            # the logs outlive the node's tmpfs, for a run that has to be understood
            with contextlib.suppress(OSError):
                shutil.copy(node.daemon.log_path, self.root / node.name / "p2psync.log")
        self._stack.close()

    # ---- user actions -----------------------------------------------------------------

    def _files(self, node: Node) -> list[Path]:
        return [node.data / k for k in user_tree(node.data)]

    def _dirs(self, node: Node) -> list[Path]:
        return [node.data / d for d in dir_tree(node.data)]

    def _new_name(self, node: Node, suffix: str = ".txt") -> Path:
        dirs = [node.data, *self._dirs(node)]
        parent = self.rng.choice(dirs) if self.rng.random() < 0.7 else node.data
        return parent / f"f{self.rng.randrange(10**6):06}{suffix}"

    def _content(self, token: str) -> bytes:
        body = f"t:{token}\n".encode()
        r = self.rng.random()
        size = 0 if r < 0.5 else self.rng.randrange(64 * 1024) if r < 0.95 else 1024 * 1024
        if size:
            body += b"pad " + self.rng.randbytes(size // 2).hex().encode()[:size] + b"\n"
        return body

    def _write_temp(self, node: Node, data: bytes) -> Path:
        tmp = node.data / f"{TMP_PREFIX}{self.rng.randrange(10**9)}"
        try:
            tmp.write_bytes(data)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def act(self, node: Node) -> None:
        kinds = [
            ("create", 5), ("edit", 5), ("append", 3), ("truncate", 1), ("delete", 2),
            ("rename", 2), ("mkdir", 1), ("rename_dir", 1), ("delete_dir", 0.3),
            ("chmod", 1), ("mtime", 1), ("edit_two", 1),
        ]  # fmt: skip
        kind = self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        try:
            done = getattr(self, f"_do_{kind}")(node)
        except FileNotFoundError:
            done = False  # the daemon moved things under us: nothing happened
        except OSError as exc:
            self.skipped[f"{kind}: {exc.strerror}"] += 1
            done = False
        if done:
            self.actions[kind] += 1
        else:
            self.skipped[kind] += 1

    def _do_create(self, node: Node) -> bool:
        token = self.model.new(node.name, self.rng)
        path = self._new_name(node)
        try:
            tmp = self._write_temp(node, self._content(token))
        except OSError:
            self.model.unwrite(token)
            raise
        try:
            renameat2(tmp, path, _RENAME_NOREPLACE)
        except OSError:
            tmp.unlink(missing_ok=True)
            self.model.unwrite(token)
            return False
        return True

    def _do_edit(self, node: Node, path: Path | None = None) -> bool:
        files = self._files(node)
        if path is None:
            if not files:
                return self._do_create(node)
            path = self.rng.choice(files)
        token = self.model.new(node.name, self.rng)
        try:
            tmp = self._write_temp(node, self._content(token))
        except OSError:
            self.model.unwrite(token)
            raise
        try:
            renameat2(tmp, path, _RENAME_EXCHANGE)
        except OSError:
            tmp.unlink(missing_ok=True)
            self.model.unwrite(token)
            return False
        if tmp.is_dir():  # the name had become a directory: swap back
            renameat2(tmp, path, _RENAME_EXCHANGE)
            tmp.unlink(missing_ok=True)
            self.model.unwrite(token)
            return False
        self.model.destroyed |= tokens_of(tmp.read_bytes())
        tmp.unlink()
        return True

    def _do_edit_two(self, node: Node) -> bool:
        """The same file edited on two devices at once: a conflict in the making."""
        other = self.nodes[self.rng.choice([n for n in NAMES if n != node.name])]
        common = set(user_tree(node.data)) & set(user_tree(other.data))
        if not common:
            return self._do_edit(node)
        rel = self.rng.choice(sorted(common))
        a = self._do_edit(node, node.data / rel)
        b = self._do_edit(other, other.data / rel)
        return a or b

    def _append_like(self, node: Node, *, truncate: bool) -> bool:
        files = self._files(node)
        if not files:
            return False
        path = self.rng.choice(files)
        fd = os.open(path, os.O_RDWR | (0 if truncate else os.O_APPEND) | os.O_NOFOLLOW)
        try:
            if truncate:
                old = os.read(fd, 64 * 1024 * 1024)
                os.ftruncate(fd, 0)
                if os.fstat(fd).st_nlink:
                    self.model.destroyed |= tokens_of(old)
                return bool(os.fstat(fd).st_nlink)
            token = self.model.new(node.name, self.rng)
            line = f"\nt:{token}\n".encode()
            try:
                written = os.write(fd, line)
            except OSError:
                self.model.unwrite(token)
                raise
            if written != len(line) or not os.fstat(fd).st_nlink:
                self.model.unwrite(token)  # short write or a replaced file: not in the folder
                return False
            return True
        finally:
            os.close(fd)

    def _do_append(self, node: Node) -> bool:
        return self._append_like(node, truncate=False)

    def _do_truncate(self, node: Node) -> bool:
        return self._append_like(node, truncate=True)

    def _do_delete(self, node: Node) -> bool:
        files = self._files(node)
        if not files:
            return False
        path = self.rng.choice(files)
        tmp = node.data / f"{TMP_PREFIX}{self.rng.randrange(10**9)}"
        os.rename(path, tmp)
        if tmp.is_dir():
            os.rename(tmp, path)
            return False
        self.model.destroyed |= tokens_of(tmp.read_bytes())
        tmp.unlink()
        return True

    def _do_rename(self, node: Node) -> bool:
        files = self._files(node)
        if not files:
            return False
        renameat2(self.rng.choice(files), self._new_name(node), _RENAME_NOREPLACE)
        return True

    def _do_mkdir(self, node: Node) -> bool:
        parent = self.rng.choice([node.data, *self._dirs(node)])
        (parent / f"d{self.rng.randrange(10**4):04}").mkdir(exist_ok=False)
        return True

    def _do_rename_dir(self, node: Node) -> bool:
        dirs = self._dirs(node)
        if not dirs:
            return self._do_mkdir(node)
        src = self.rng.choice(dirs)
        dst = node.data / f"d{self.rng.randrange(10**4):04}"
        if dst == src or src in dst.parents:
            return False
        renameat2(src, dst, _RENAME_NOREPLACE)
        return True

    def _do_delete_dir(self, node: Node) -> bool:
        dirs = self._dirs(node)
        if not dirs:
            return False
        tmp = node.data / f"{TMP_PREFIX}{self.rng.randrange(10**9)}"
        os.rename(self.rng.choice(dirs), tmp)  # atomic: what is under it now is what goes
        for dirpath, _, filenames in os.walk(tmp):
            for name in filenames:
                with contextlib.suppress(OSError):
                    self.model.destroyed |= tokens_of((Path(dirpath) / name).read_bytes())
        shutil.rmtree(tmp)
        return True

    def _do_chmod(self, node: Node) -> bool:
        files = self._files(node)
        if not files:
            return False
        os.chmod(self.rng.choice(files), self.rng.choice([0o600, 0o640, 0o644, 0o755]))
        return True

    def _do_mtime(self, node: Node) -> bool:
        files = self._files(node)
        if not files:
            return False
        when = time.time() + self.rng.uniform(-365 * 86400, 86400)
        os.utime(self.rng.choice(files), (when, when))
        return True

    # ---- faults -----------------------------------------------------------------------

    def fault(self, now: float) -> None:
        if not self._fault_bag:  # every kind once, in a random order, then again
            self._fault_bag = ["kill", "partition", "cut", "pause_peer", "pause_folder"]
            if self.use_tmpfs:
                self._fault_bag.append("disk_full")
            if FAKETIME_LIB.exists():
                self._fault_bag.append("clock_jump")
            self.rng.shuffle(self._fault_bag)
        kind = self._fault_bag.pop()
        node = self.nodes[self.rng.choice(NAMES)]
        until = now + self.rng.uniform(*self.cfg.fault_duration)
        if kind == "kill":
            if not node.daemon.alive():
                return
            node.daemon.kill()
            node.restart_at = until
        elif kind == "partition":
            if self.partition_until is not None:
                return
            group = set(self.rng.sample(NAMES, self.rng.randint(1, 2)))
            self.mesh.partition(group)
            self.partition_until = until
            self._log(f"partition {sorted(group)}")
        elif kind == "cut":
            other = self.rng.choice([n for n in NAMES if n != node.name])
            self.mesh.cut_next(node.name, other, self.rng)
        elif kind == "pause_peer":
            other = self.nodes[self.rng.choice([n for n in NAMES if n != node.name])]
            if (node.name, other.name) in self.paused_peers:
                return
            if self._cli(node, "peer", "pause", other.device_id):
                self.paused_peers[(node.name, other.name)] = until
        elif kind == "pause_folder":
            if node.name in self.paused_folders:
                return
            if self._cli(node, "folder", "pause", FOLDER):
                self.paused_folders[node.name] = until
        elif kind == "disk_full":
            if node.name in self.disk_until:
                return
            with contextlib.suppress(OSError):
                fill(node.data.parent, leave_free=0)
            self.disk_until[node.name] = until
        elif kind == "clock_jump":
            if node.clock_file is None or node.clock_back_at is not None:
                return
            offset = self.rng.randint(*CLOCK_JUMP_SECONDS) * self.rng.choice((1, -1))
            node.clock_file.write_text(f"{offset:+d}\n")
            node.clock_back_at = until
            self._log(f"clock_jump {node.name} {offset:+d} s")
        self.faults[kind] += 1
        self._log(f"{kind} {node.name}")

    def _cli(self, node: Node, *args: str) -> bool:
        if not node.daemon.alive():
            return False
        done = subprocess.run(
            [*P2PSYNC, "--home", str(node.home), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done.returncode == 0

    def end_faults(self, now: float, *, all_of_them: bool = False) -> None:
        # Disks, clocks and links before restarts: a daemon restarted on a full disk
        # cannot write the "ready" line the harness waits for at the end of a run.
        if self.partition_until is not None and (all_of_them or now >= self.partition_until):
            self.mesh.heal()
            self.partition_until = None
        for name, until in list(self.disk_until.items()):
            if all_of_them or now >= until:
                _free_disk(self.nodes[name].data.parent)
                del self.disk_until[name]
        for node in self.nodes.values():
            at = node.clock_back_at
            if at is not None and node.clock_file is not None and (all_of_them or now >= at):
                node.clock_file.write_text("+0\n")  # and back again: a second jump
                node.clock_back_at = None
        for node in self.nodes.values():
            if node.restart_at is not None and (all_of_them or now >= node.restart_at):
                node.daemon.start()
                node.restart_at = None
        # (a pause is lifted through the daemon's API: a daemon still down keeps it until
        # the next call)
        for (a, b), until in list(self.paused_peers.items()):
            if (all_of_them or now >= until) and self._cli(
                self.nodes[a], "peer", "resume", self.nodes[b].device_id
            ):
                del self.paused_peers[(a, b)]
        for name, until in list(self.paused_folders.items()):
            if (all_of_them or now >= until) and self._cli(
                self.nodes[name], "folder", "resume", FOLDER
            ):
                del self.paused_folders[name]

    # ---- the run ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.setup()
        for node in self.nodes.values():
            try:
                _wait(node.daemon.ready, 60, f"{node.name} ready")
            except AssertionError as exc:  # a hang at start-up: say where it hangs
                raise AssertionError(f"{exc}; its threads:\n{node.daemon.stacks()}") from None
        end = time.monotonic() + self.cfg.seconds
        next_fault = time.monotonic() + self.rng.uniform(*self.cfg.fault_interval)
        while (now := time.monotonic()) < end:
            self.end_faults(now)
            if now >= next_fault:
                self.fault(now)
                next_fault = now + self.rng.uniform(*self.cfg.fault_interval)
            self.act(self.nodes[self.rng.choice(NAMES)])
            time.sleep(self.rng.uniform(*self.cfg.action_interval))  # the user's pace
        self.end_faults(time.monotonic(), all_of_them=True)
        quiet = time.monotonic()
        for node in self.nodes.values():
            # its log says ready, or (a start on a full disk could not log it) it answers
            _wait(
                lambda n=node: n.daemon.ready() or self._cli(n, "status"),
                60,
                f"{node.name} restarted",
            )
        _wait(self._lift_every_pause, 60, "every pause lifted")
        converged = self._converge()
        return self._report(converged, time.monotonic() - quiet)

    def _lift_every_pause(self) -> bool:
        """Pauses of daemons just back; a resume that failed is tried again."""
        self.end_faults(time.monotonic(), all_of_them=True)
        return not (self.paused_peers or self.paused_folders)

    def _disks(self) -> dict[str, str]:
        """Each node's disk use at the end (a full disk cannot converge)."""
        out = {}
        for node in self.nodes.values():
            st = os.statvfs(node.data)
            total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
            out[node.name] = f"{(total - free) / 2**20:.0f} of {total / 2**20:.0f} MiB used"
        return out

    def _converge(self) -> bool:
        deadline = time.monotonic() + self.cfg.converge_timeout
        stable = 0
        while time.monotonic() < deadline:
            trees = [user_tree(n.data) for n in self.nodes.values()]
            dirs = [dir_tree(n.data) for n in self.nodes.values()]
            same = all(t == trees[0] for t in trees) and all(d == dirs[0] for d in dirs)
            if same and all(self._idle(n) for n in self.nodes.values()):
                stable += 1
                if stable >= 3:
                    return True
            else:
                stable = 0
            time.sleep(1.0)  # polling for convergence, with a deadline
        self.divergence = self._divergence()
        return False

    def _divergence(self) -> dict[str, Any]:
        """What still differed when convergence timed out: the paths and each node's state."""
        trees = {n.name: user_tree(n.data) for n in self.nodes.values()}
        dirs = {n.name: dir_tree(n.data) for n in self.nodes.values()}
        paths = set().union(*trees.values())
        differing = {}
        for path in sorted(paths):
            versions = {name: _digest(t.get(path)) for name, t in trees.items()}
            if len(set(versions.values())) > 1:
                differing[path] = versions
        all_dirs = set().union(*dirs.values())
        missing_dirs = {d: sorted(n for n, ds in dirs.items() if d not in ds) for d in all_dirs}
        return {
            "files": dict(list(differing.items())[:20]),
            "files_differing": len(differing),
            "dirs": {d: m for d, m in sorted(missing_dirs.items()) if m},
            "status": {n.name: self._status(n) for n in self.nodes.values()},
        }

    def _status(self, node: Node) -> Any:
        folders = _folders(node)
        if isinstance(folders, str):
            return folders
        keys = ("state", "reason", "paused", "need_items", "item_errors", "not_synced")
        return [
            {k: f.get(k) for k in keys}
            | {"connected": [d["name"] for d in f["devices"] if d["connected"]]}
            for f in folders
        ]

    def _idle(self, node: Node) -> bool:
        folders = _folders(node)
        return isinstance(folders, list) and all(
            f["state"] == "idle" and f["need_items"] == 0 for f in folders
        )

    def _report(self, converged: bool, seconds: float) -> dict[str, Any]:
        final = user_tree(self.nodes[NAMES[0]].data)
        present: set[str] = set()
        for data in final.values():
            present |= tokens_of(data)
        lost = sorted(self.model.must_survive() - present)
        return {
            "seed": self.cfg.seed,
            "seconds": self.cfg.seconds,
            "converged": converged,
            "converge_seconds": round(seconds, 1),
            "actions": dict(self.actions),
            "skipped": dict(self.skipped),
            "faults": dict(self.faults),
            "tokens_written": len(self.model.written),
            "tokens_destroyed_by_users": len(self.model.destroyed & set(self.model.written)),
            "tokens_lost": lost,
            "files": len(final),
            "conflict_copies": sum(".sync-conflict-" in k for k in final),
            "tree_mib": round(sum(len(v) for v in final.values()) / 2**20, 1),
            "disks": self._disks(),
            "divergence": self.divergence,
            "events": self.events[-200:],
        }


def _folders(node: Node) -> list[dict[str, Any]] | str:
    """The node's folders from ``status --json``, or why status failed."""
    done = subprocess.run(
        [*P2PSYNC, "--home", str(node.home), "status", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        return f"status failed: {done.stderr.strip()[-200:]}"
    folders: list[dict[str, Any]] = json.loads(done.stdout)["folders"]
    return folders


def _digest(data: bytes | None) -> str:
    return "absent" if data is None else hashlib.sha256(data).hexdigest()[:10]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(home: Path, *args: str) -> None:
    env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1"}
    done = subprocess.run(
        [*P2PSYNC, "--home", str(home), *args], env=env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"p2psync {' '.join(args)}: {done.stderr}")


def _free_disk(disk: Path) -> None:
    for p in disk.iterdir():
        if p.name.startswith("filler") or p.name == ".filler":
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def replay_config(report: dict[str, Any], seconds: float | None = None) -> ChaosConfig:
    """The config that reproduces ``report`` (same seed; optionally another length)."""
    base = ChaosConfig(seed=report["seed"], seconds=report["seconds"])
    return replace(base, seconds=seconds) if seconds is not None else base
